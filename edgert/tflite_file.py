"""Structural check and summary of a .tflite file, read with the bounds-checked
reader in ``edgert.flatbuf`` (field ids from LiteRT's schema.fbs).

The checks are the ones whose failure makes an interpreter read out of bounds:
indices into tensors, buffers and opcodes, buffer extents, and constant data
sizes that disagree with the tensor's shape and type.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from edgert.flatbuf import FlatBufferError, Table, TensorTooLargeError, root

IDENTIFIER = b"TFL3"

# TensorType -> bytes per element (INT4 is packed two per byte; STRING,
# RESOURCE and VARIANT have no fixed size and are not size-checked).
_ELEMENT_BITS = {0: 32, 1: 16, 2: 32, 3: 8, 4: 64, 6: 8, 7: 16, 8: 64, 9: 8, 10: 64,
                 11: 128, 12: 64, 15: 32, 16: 16, 17: 4, 18: 16}
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string",
               6: "bool", 7: "int16", 8: "complex64", 9: "int8", 10: "float64",
               11: "complex128", 12: "uint64", 13: "resource", 14: "variant", 15: "uint32",
               16: "uint16", 17: "int4", 18: "bfloat16"}
_MAX_DIM = 1 << 31


@dataclass
class TFLiteSummary:
    version: int
    op_counts: Dict[str, int] = field(default_factory=dict)
    tensor_types: Dict[str, int] = field(default_factory=dict)
    signature_keys: List[str] = field(default_factory=list)
    weight_bytes: int = 0
    quantized: bool = False
    sparse_tensors: int = 0


def _builtin_names() -> Dict[int, str]:
    """BuiltinOperator code -> name, from LiteRT's generated schema when installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema  # type: ignore
    except ImportError:
        return {}
    ops = schema.BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def read_tflite(buf: bytes, max_tensor_bytes: Optional[int] = None) -> TFLiteSummary:
    """Check ``buf`` is a well-formed TFLite model and summarize it.

    Raises ``FlatBufferError`` naming the first inconsistency found: out-of-range
    indices, buffers past the end, constant data of the wrong size, names that are not
    UTF-8 (the interpreter's Python binding decodes them), and, with
    ``max_tensor_bytes``, a tensor without data (which the interpreter allocates at
    load) declared larger than that (``TensorTooLargeError``).
    """
    if len(buf) < 8 or bytes(buf[4:8]) != IDENTIFIER:
        raise FlatBufferError("no TFL3 file identifier at bytes 4..8: not a TFLite model")
    model = root(buf)
    version = model.scalar(0, "I")
    if version != 3:
        raise FlatBufferError(f"schema version {version}, expected 3")
    codes = model.tables(1)
    buffers = model.tables(4)
    n_buf = len(buffers)
    buffer_sizes = [_buffer_size(b, i, len(buf)) for i, b in enumerate(buffers)]
    subgraphs = model.tables(2)
    if not subgraphs:
        raise FlatBufferError("the model has no subgraph")
    summary = TFLiteSummary(version=version)
    names = _builtin_names()
    ops: Counter = Counter()
    types: Counter = Counter()
    for si, sg in enumerate(subgraphs):
        tensors = sg.tables(0)
        n_t = len(tensors)
        for ti, t in enumerate(tensors):
            _check_tensor(t, si, ti, n_buf, buffer_sizes, summary, types, max_tensor_bytes)
        for what, fid in (("input", 1), ("output", 2)):
            for idx in sg.scalars(fid, "i"):
                if not 0 <= idx < n_t:
                    raise FlatBufferError(f"subgraph {si} {what} names tensor {idx} of {n_t}")
        for oi, op in enumerate(sg.tables(3)):
            code = op.scalar(0, "I")
            if code >= len(codes):
                raise FlatBufferError(
                    f"subgraph {si} operator {oi} uses opcode {code} of {len(codes)}")
            for fid in (1, 2, 8):
                for idx in op.scalars(fid, "i"):
                    if not -1 <= idx < n_t:
                        raise FlatBufferError(
                            f"subgraph {si} operator {oi} refers to tensor {idx} of {n_t}")
            if si == 0:
                ops[_op_name(codes[code], names)] += 1
        sg.string(4, strict=True)
    for sig in model.tables(7):
        sub = sig.scalar(4, "I")
        if sub >= len(subgraphs):
            raise FlatBufferError(f"signature refers to subgraph {sub} of {len(subgraphs)}")
        n_t = len(subgraphs[sub].tables(0))
        for fid in (0, 1):
            for tm in sig.tables(fid):
                tm.string(0, strict=True)
                if tm.scalar(1, "I") >= n_t:
                    raise FlatBufferError("signature maps a name to a tensor that does not exist")
        summary.signature_keys.append(sig.string(2, strict=True) or "")
    summary.op_counts = dict(ops)
    summary.tensor_types = dict(types)
    return summary


def _buffer_size(b: Table, index: int, file_size: int) -> int:
    data_len = b.vector_len(0, 1)
    offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
    if offset > 1:
        if offset + size > file_size:
            raise FlatBufferError(
                f"buffer {index} spans bytes {offset}..{offset + size}, past the end "
                f"of the {file_size}-byte file (truncated?)")
        return size
    return data_len


def _op_name(code: Table, names: Dict[int, str]) -> str:
    builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
    if builtin == 32:  # CUSTOM
        return "CUSTOM:" + (code.string(1, strict=True) or "?")
    return names.get(builtin, f"BUILTIN_{builtin}")


def _check_tensor(t: Table, si: int, ti: int, n_buf: int, buffer_sizes: List[int],
                  summary: TFLiteSummary, types: Counter,
                  max_tensor_bytes: Optional[int] = None) -> None:
    shape = t.scalars(0, "i")
    try:
        name = t.string(3, strict=True)
    except FlatBufferError as exc:
        raise FlatBufferError(f"subgraph {si} tensor {ti}: its name is not UTF-8 ({exc})") from None
    ttype = t.scalar(1, "b")
    bidx = t.scalar(2, "I")
    if any(d < -1 or d > _MAX_DIM for d in shape):
        raise FlatBufferError(f"subgraph {si} tensor {ti} has a bad shape {shape}")
    if bidx >= n_buf:
        raise FlatBufferError(f"subgraph {si} tensor {ti} uses buffer {bidx} of {n_buf}")
    if ttype not in _TYPE_NAMES:
        raise FlatBufferError(f"subgraph {si} tensor {ti} has unknown type {ttype}")
    types[_TYPE_NAMES[ttype]] += 1
    quant = t.table(4)
    if quant is not None and quant.vector_len(2, 4) > 0:
        summary.quantized = summary.quantized or ttype in (3, 7, 9, 17)
    sparse = t.has(6)
    summary.sparse_tensors += int(sparse)
    size = buffer_sizes[bidx] if bidx else 0
    bits = _ELEMENT_BITS.get(ttype)
    count = 1
    for d in shape:
        count *= d if d >= 0 else 1     # Python ints: 2^31 x 2^31 does not overflow
    want = (count * bits + 7) // 8 if bits else 0
    if not size:
        if max_tensor_bytes is not None and want > max_tensor_bytes:
            raise TensorTooLargeError(
                f"tensor {name!r} (subgraph {si}, tensor {ti}) declares shape "
                f"{'x'.join(map(str, shape))} {_TYPE_NAMES[ttype]}, {want / 2 ** 30:.1f} GiB, "
                f"over the limit of {max_tensor_bytes / 2 ** 30:.1f} GiB per tensor")
        return
    summary.weight_bytes += size
    if bits is None or sparse or -1 in shape:
        return
    if size != want:
        raise FlatBufferError(
            f"subgraph {si} tensor {ti} of shape {shape} and type {_TYPE_NAMES[ttype]} needs "
            f"{want} bytes but its buffer holds {size}")
