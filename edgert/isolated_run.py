"""Runs with a deadline: ``Session.run(..., timeout=s)`` runs the model in a worker
process that can be killed.

A thread cannot stop native code: a LiteRT WHILE loop that never ends or an ONNX
Loop with a trip count of 2^62 keeps ``invoke``/``run`` busy forever, and neither
LiteRT's nor MNN's Python binding offers a way to cancel it. A process can be
killed, so a run with a deadline happens in a worker: it loads the model once (the
file already passed the checks of ``edgert.load``), then serves one call after
another over a pipe, under the memory limit of ``edgert.limits``. When a call
misses its deadline the worker is killed (by its PID) and the call raises
``RunTimeoutError``; the next call with a deadline starts a fresh worker.

Messages are an 8-byte length, a JSON header, then the raw bytes of the arrays
the header lists (dtype, shape): no pickle crosses the pipe.

Run as ``python -m edgert.isolated_run REQUEST_FD REPLY_FD``.
"""
from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from typing import IO, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgert import errors, limits
from edgert.errors import EngineError, ModelFileError, RunTimeoutError

_LEN = struct.Struct("<Q")


# -- the wire ---------------------------------------------------------------------------

def _encode(header: dict, arrays: Sequence[np.ndarray] = ()) -> List[bytes]:
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = dict(header, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    head = json.dumps(header).encode()
    return [_LEN.pack(len(head)), head] + [a.tobytes() for a in arrays]


def _write_all(fd: int, chunks: Sequence[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int, deadline: Optional[float]) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n - len(buf), 1 << 24))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _read_message(fd: int, deadline: Optional[float]) -> Tuple[dict, List[np.ndarray]]:
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
    header = json.loads(_read_exact(fd, size, deadline))
    arrays = []
    for dtype, shape in header.pop("arrays", []):
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        raw = _read_exact(fd, count * dt.itemsize, deadline)
        arrays.append(np.frombuffer(raw, dtype=dt).reshape(shape).copy())
    return header, arrays


# -- the parent side --------------------------------------------------------------------

class IsolatedRunner:
    """A worker process holding one loaded model; ``run`` with a deadline."""

    def __init__(self, path: str, engine: str, threads: int, precision: str,
                 options: Dict[str, object]) -> None:
        self.path = path
        self.spec: Dict[str, object] = {"path": path, "engine": engine, "threads": threads,
                     "precision": precision, "memory_limit": limits.memory_limit(),
                     "options": {k: v for k, v in options.items()
                                 if isinstance(v, (str, int, float, bool))}}
        self._proc: Optional[subprocess.Popen] = None
        self._fds: Tuple[int, int] = (-1, -1)
        self._log: Optional[IO[bytes]] = None
        self._finalizer: Optional[weakref.finalize] = None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def run(self, arrays: Sequence[np.ndarray], timeout: float) -> List[np.ndarray]:
        if self._proc is None:
            self._start()
        try:
            _write_all(self._fds[0], _encode({"op": "run"}, arrays))
            header, outs = _read_message(self._fds[1], time.monotonic() + timeout)
        except TimeoutError:
            self.close(kill=True)
            raise RunTimeoutError(
                f"{self.spec['path']}: the run did not finish within {timeout:g} s; the "
                "worker process running it was stopped") from None
        except (EOFError, OSError):
            raise self._died("running") from None
        if header.get("error"):
            raise _error_class(header["error"])(header["message"])
        return outs

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self._log = tempfile.TemporaryFile()
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "edgert.isolated_run", str(req_r), str(rep_w)],
                pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, env=env)
        finally:
            os.close(req_r)
            os.close(rep_w)
        self._fds = (req_w, rep_r)
        # a session dropped without close() must not leave its worker behind
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._fds)
        deadline = time.monotonic() + limits.probe_timeout(os.path.getsize(self.path))
        try:
            _write_all(req_w, _encode({"op": "load", **self.spec}))
            header, _ = _read_message(rep_r, deadline)
        except TimeoutError:
            self.close(kill=True)
            raise ModelFileError(f"{self.spec['path']}: the worker did not finish loading the "
                                 "model in time") from None
        except (EOFError, OSError):
            raise self._died("loading") from None
        if header.get("error"):
            self.close(kill=True)
            raise _error_class(header["error"])(header["message"])

    def _died(self, doing: str) -> Exception:
        proc = self._proc
        code = proc.wait(timeout=30) if proc is not None else None
        tail = self._log_tail()
        self.close(kill=True)
        why = (f"was killed by {_signame(-code)}" if code is not None and code < 0
               else f"exited with status {code}")
        return ModelFileError(
            f"{self.spec['path']}: the worker process {why} while {doing} the model"
            + (f" ({tail})" if tail else ""))

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines()
                 if ln.strip()]
        return " / ".join(lines[-3:])

    def close(self, kill: bool = False) -> None:
        """Stop the worker: ask it to exit, or kill it (``kill=True``, or if it does not)."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None:
            _stop(self._proc, self._fds, kill)
        self._proc, self._fds = None, (-1, -1)
        if self._log is not None:
            self._log.close()
            self._log = None


def _stop(proc: subprocess.Popen, fds: Tuple[int, int], kill: bool = False) -> None:
    for fd in fds:
        try:
            os.close(fd)     # closing the request pipe tells the worker to exit
        except OSError:
            pass
    if kill:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _error_class(name: str) -> type:
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, errors.EdgertError) else EngineError


# -- the worker -------------------------------------------------------------------------

def _reply_error(fd: int, exc: BaseException) -> None:
    name = type(exc).__name__ if isinstance(exc, errors.EdgertError) else "EngineError"
    msg = str(exc) if isinstance(exc, errors.EdgertError) else \
        f"the engine raised {type(exc).__name__}: {exc}"
    _write_all(fd, _encode({"error": name, "message": msg}))


def _serve(req: int, rep: int) -> int:
    header, _ = _read_message(req, None)
    from edgert.engines import engine_class

    engine_class(header["engine"]).available()   # the engine's libraries load before the limit
    limits.limit_this_process(int(header["memory_limit"]))

    try:
        engine = engine_class(header["engine"])(header["path"], header["threads"],
                                                header["precision"], header["options"])
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        _reply_error(rep, exc)
        return 0
    _write_all(rep, _encode({"ok": True}))
    while True:
        try:
            _, arrays = _read_message(req, None)
        except EOFError:
            return 0
        try:
            outs = engine.run(arrays)
        except BaseException as exc:  # noqa: BLE001
            _reply_error(rep, exc)
            continue
        _write_all(rep, _encode({"ok": True}, outs))


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1]), int(sys.argv[2])))
