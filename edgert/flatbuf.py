"""A bounds-checked reader for FlatBuffers, enough to check a model file before
an engine parses it.

Why hand-written: the ``flatbuffers`` Python package has no verifier and its
generated accessors read wherever an offset points; a corrupt file then either
raises something obscure or yields garbage. Every read here checks its bounds and
raises ``FlatBufferError`` with the position, so a truncated or bit-flipped model
is named as such before any C++ engine sees it. It reads tables, scalars,
vectors and strings; it knows no schema (callers give field ids).
"""
from __future__ import annotations

import struct
from typing import List, Optional


class FlatBufferError(ValueError):
    """The buffer is not a well-formed FlatBuffer at some position."""


class TensorTooLargeError(FlatBufferError):
    """A tensor the engine allocates at load declares more bytes than the budget."""


class Table:
    """A table inside ``buf`` at absolute position ``pos``."""

    __slots__ = ("buf", "pos", "_vt", "_vt_len", "_obj_len")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise FlatBufferError(f"table at {pos} is outside the buffer ({n} bytes)")
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise FlatBufferError(f"vtable of table at {pos} points outside the buffer ({vt})")
        self._vt = vt
        self._vt_len, self._obj_len = struct.unpack_from("<HH", buf, vt)
        if self._vt_len < 4 or self._vt_len % 2 or vt + self._vt_len > n:
            raise FlatBufferError(f"vtable at {vt} has a bad size {self._vt_len}")
        if pos + self._obj_len > n:
            raise FlatBufferError(f"table at {pos} runs past the end of the buffer")
        # every field the vtable lists must lie inside the table, read or not: engines
        # read fields this reader does not (MNN crashed on one offset past its table)
        slots = (self._vt_len - 4) // 2
        if slots and max(struct.unpack_from(f"<{slots}H", buf, vt + 4)) >= max(self._obj_len, 4):
            raise FlatBufferError(f"a field of the table at {pos} lies outside the table")

    def _field(self, field_id: int) -> int:
        """Absolute position of a field, or 0 when absent."""
        slot = 4 + 2 * field_id
        if slot + 2 > self._vt_len:
            return 0
        off = struct.unpack_from("<H", self.buf, self._vt + slot)[0]
        if off == 0:
            return 0
        if off >= self._obj_len:
            raise FlatBufferError(f"field {field_id} of table at {self.pos} lies outside the table")
        return self.pos + off

    def has(self, field_id: int) -> bool:
        return self._field(field_id) != 0

    def scalar(self, field_id: int, fmt: str, default: float = 0):
        at = self._field(field_id)
        if not at:
            return default
        size = struct.calcsize("<" + fmt)
        if at + size > len(self.buf):
            raise FlatBufferError(f"scalar field {field_id} at {at} runs past the end")
        return struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _indirect(self, field_id: int) -> Optional[int]:
        at = self._field(field_id)
        if not at:
            return None
        if at + 4 > len(self.buf):
            raise FlatBufferError(f"offset field {field_id} at {at} runs past the end")
        target = at + struct.unpack_from("<I", self.buf, at)[0]
        if target >= len(self.buf):
            raise FlatBufferError(f"field {field_id} at {at} points past the end ({target})")
        return target

    def table(self, field_id: int) -> Optional["Table"]:
        target = self._indirect(field_id)
        return None if target is None else Table(self.buf, target)

    def _vector(self, field_id: int, elem_size: int):
        target = self._indirect(field_id)
        if target is None:
            return None, 0
        if target + 4 > len(self.buf):
            raise FlatBufferError(f"vector of field {field_id} at {target} runs past the end")
        count = struct.unpack_from("<I", self.buf, target)[0]
        start = target + 4
        if start + count * elem_size > len(self.buf):
            raise FlatBufferError(
                f"vector of field {field_id} at {target} claims {count} elements, past the end")
        return start, count

    def vector_len(self, field_id: int, elem_size: int = 1) -> int:
        return self._vector(field_id, elem_size)[1]

    def head(self, field_id: int, n: int) -> bytes:
        """The first ``n`` bytes (at most) of a byte vector; b"" when absent."""
        start, count = self._vector(field_id, 1)
        if start is None:
            return b""
        return bytes(self.buf[start:start + min(n, count)])

    def scalars(self, field_id: int, fmt: str) -> List:
        size = struct.calcsize("<" + fmt)
        start, count = self._vector(field_id, size)
        if start is None:
            return []
        return list(struct.unpack_from(f"<{count}{fmt}", self.buf, start))

    def tables(self, field_id: int) -> List["Table"]:
        start, count = self._vector(field_id, 4)
        if start is None:
            return []
        out = []
        for i in range(count):
            at = start + 4 * i
            out.append(Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out

    def string(self, field_id: int, strict: bool = False) -> Optional[str]:
        """A string field; ``strict``: bytes that are not UTF-8 are an error (bindings
        that decode names raise ``UnicodeDecodeError`` on them), else replaced."""
        start, count = self._vector(field_id, 1)
        if start is None:
            return None
        raw = bytes(self.buf[start:start + count])
        if not strict:
            return raw.decode("utf-8", errors="replace")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlatBufferError(f"string field {field_id} of table at {self.pos} is not "
                                  f"UTF-8 ({raw[:40]!r}: {exc.reason})") from None

    def strings(self, field_id: int, strict: bool = False) -> List[str]:
        """A vector of strings, each bounds-checked (``strict``: and UTF-8)."""
        start, count = self._vector(field_id, 4)
        if start is None:
            return []
        out = []
        n = len(self.buf)
        for i in range(count):
            at = start + 4 * i
            s = at + struct.unpack_from("<I", self.buf, at)[0]
            if s + 4 > n:
                raise FlatBufferError(f"string {i} of field {field_id} points past the end")
            length = struct.unpack_from("<I", self.buf, s)[0]
            if s + 4 + length > n:
                raise FlatBufferError(f"string {i} of field {field_id} runs past the end")
            raw = bytes(self.buf[s + 4:s + 4 + length])
            try:
                out.append(raw.decode("utf-8", errors="strict" if strict else "replace"))
            except UnicodeDecodeError as exc:
                raise FlatBufferError(f"string {i} of field {field_id} is not UTF-8 "
                                      f"({raw[:40]!r}: {exc.reason})") from None
        return out


def root(buf: bytes) -> Table:
    """The root table of a FlatBuffer."""
    if len(buf) < 8:
        raise FlatBufferError(f"only {len(buf)} bytes: too short for a FlatBuffer")
    return Table(buf, struct.unpack_from("<I", buf, 0)[0])
