"""Capture what native libraries print on file descriptors 1 and 2.

MNN prints banners ("The device supports: ...", "MNN use high precision") and
its converter prints progress and errors straight to the C ``stdout``. Those
lines would corrupt ``--json`` output and, when stdout is a pipe, sit in libc's
buffer until exit. Python's ``contextlib.redirect_stdout`` cannot see them, so
this redirects the file descriptors themselves and flushes libc's buffers.

The redirection is process-wide while it lasts: keep the block short.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading
from typing import Iterator, List

_lock = threading.Lock()


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no libc (e.g. Windows): nothing to flush
        pass


class Captured:
    """Text the native code printed inside the block (``.text`` after exit)."""

    def __init__(self) -> None:
        self.text = ""

    def lines(self) -> List[str]:
        return [ln for ln in self.text.splitlines() if ln.strip()]


@contextlib.contextmanager
def capture_native_output(stderr: bool = True) -> Iterator[Captured]:
    """Redirect fd 1 (and 2) to a temporary file for the block; collect the text."""
    result = Captured()
    fds = [1, 2] if stderr else [1]
    with _lock, tempfile.TemporaryFile(mode="w+b") as sink:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError):
                pass
        _flush_c_stdio()
        saved = {}
        try:
            for fd in fds:
                try:
                    saved[fd] = os.dup(fd)
                    os.dup2(sink.fileno(), fd)
                except OSError:
                    saved.pop(fd, None)
            yield result
        finally:
            _flush_c_stdio()
            for fd, old in saved.items():
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            result.text = sink.read().decode("utf-8", errors="replace")
