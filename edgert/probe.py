"""The isolated first load: open a model in a child process before the user's
process does, so an engine that crashes on a damaged or hostile file kills the
child, not the caller.

The verdict is cached per (file sha256, engine, engine version, options) under
``$EDGERT_CACHE_DIR`` (default ``~/.cache/edgert``), so it costs one child
process per new file. Only a clean success passes: a crash, a hang past the
deadline (``edgert.limits.probe_timeout``: it grows with the file's size), an
allocation past the memory limit the child runs under (``edgert.limits``), or any
exception that is not a clean edgert error becomes a ``ModelFileError`` naming the
cause; an ordinary edgert error in the child (the engine refused the file) is
re-raised here with the child's message, without loading the file in this process
at all: an engine that refuses a damaged file in one process may crash on it in
another.

Run as ``python -m edgert.probe SPEC_JSON``: loads the model and runs it once on
seeded random inputs.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Dict, Optional

from edgert import errors, limits
from edgert.errors import ModelFileError
from edgert.files import file_sha256
from edgert.tensors import nbytes


def cache_dir() -> Optional[str]:
    base = os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgert")
    path = os.path.join(base, "probe")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def probe_model(path: str, fmt: str, engine: str, engine_version: str,
                options: Dict[str, object]) -> None:
    """Raise ``ModelFileError`` (or the child's own edgert error) unless loading and
    running ``path`` in a child process ends in a clean success."""
    spec = {"path": os.path.abspath(path), "format": fmt, "engine": engine,
            "memory_limit": limits.memory_limit(),
            "options": {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))}}
    key = hashlib.sha256(json.dumps(
        [file_sha256(path), engine, engine_version, spec["options"]], sort_keys=True).encode()
    ).hexdigest()[:32]
    cdir = cache_dir()
    marker = os.path.join(cdir, key) if cdir else None
    if marker and os.path.exists(marker):
        return
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    timeout = limits.probe_timeout(os.path.getsize(path))
    with tempfile.TemporaryDirectory(prefix="edgert-probe-") as tmp:
        spec["report"] = os.path.join(tmp, "report.json")
        proc = _run_child(path, engine, spec, env, timeout)
        report = _read_report(spec["report"])
    _judge(path, engine, proc, report, spec["memory_limit"])
    if marker:
        try:
            with open(marker, "w") as f:
                f.write(spec["path"] + "\n")
        except OSError:
            pass


def _judge(path: str, engine: str, proc: subprocess.CompletedProcess, report: dict,
           memory_limit: int) -> None:
    """Only a child that exited 0 after writing an "ok" report passes."""
    if proc.returncode < 0:
        raise _crash_error(path, engine, proc, memory_limit)
    if report.get("error"):
        raise _error_class(report["error"])(report["message"])
    if proc.returncode != 0 or not report.get("ok"):
        tail = _tail(proc)
        raise ModelFileError(
            f"{path}: {engine} failed loading or running this file in the isolated check "
            f"(the check exited with status {proc.returncode}"
            + (f": {tail}" if tail else "") + ")")


def _run_child(path: str, engine: str, spec: dict, env: dict,
               timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "edgert.probe", json.dumps(spec)],
                              capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:   # subprocess.run killed the child
        raise ModelFileError(
            f"{path}: {engine} did not finish loading and running the model once within "
            f"{timeout:.0f} s in the isolated check (a loop that never ends, or far more "
            f"work than the file's size suggests; {limits.TIMEOUT_ENV} sets the limit). "
            "Pass check='structure' to skip this check.") from None


def _read_report(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # the child died before writing it
        return {}


def _tail(proc: subprocess.CompletedProcess, n: int = 3) -> str:
    text = (proc.stdout or b"") + b"\n" + (proc.stderr or b"")
    lines = [ln.strip() for ln in text.decode(errors="replace").splitlines()
             if ln.strip() and "The device supports" not in ln]
    return " / ".join(lines[-n:])


def _crash_error(path: str, engine: str, proc: subprocess.CompletedProcess,
                 memory_limit: int) -> ModelFileError:
    sig = -proc.returncode
    try:
        signame = signal.Signals(sig).name
    except ValueError:
        signame = f"signal {sig}"
    tail = _tail(proc)
    memory = "memoryerror" in tail.lower() or _out_of_memory(Exception(tail))
    why = (f"ran out of the memory limit of {limits.fmt_bytes(memory_limit)} "
           f"({limits.MEMORY_ENV} sets it)" if memory else
           "the file is damaged or not a model it can read")
    return ModelFileError(
        f"{path}: {engine} crashed ({signame}) loading or running this file in the "
        f"isolated check: {why}" + (f" (engine said: {tail})" if tail else ""))


def _error_class(name: str) -> type:
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, errors.EdgertError) else errors.EngineError


def _child(spec_json: str) -> int:
    """Load and run once; write {"ok": true} or {"error": class, "message": ...}.

    Random inputs may not suit every model (e.g. token ids, a shape input): a clean
    ``InputError``/``EngineError`` from the run says nothing about the file and is
    recorded as a note. Anything else, in the load or the run (an allocation past the
    memory limit, a binding's UnicodeDecodeError, ...), fails the file.
    """
    spec = json.loads(spec_json)
    from edgert.engines import engine_class

    engine_class(spec["engine"]).available()   # the engine's libraries load before the limit
    limits.limit_this_process(int(spec["memory_limit"]))
    try:
        report = _load_and_run(spec)
    except MemoryError:
        report = _memory_report(spec, "")
    except errors.EdgertError as exc:
        report = _memory_report(spec, str(exc)) if _out_of_memory(exc) else \
            {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a binding's own exception on a bad file
        report = {"error": "ModelFileError", "message": (
            f"{spec['path']}: {spec['engine']} raised {type(exc).__name__} on this file: "
            f"{str(exc)[:300]}")}
    with open(spec["report"], "w") as f:
        json.dump(report, f)
    return 0


def _load_and_run(spec: dict) -> Dict[str, object]:
    from edgert.session import load

    sess = load(spec["path"], engine=spec["engine"], check="structure", **spec["options"])
    declared = sum(nbytes(i.concrete_shape(), i.dtype) for i in sess.inputs)
    if declared > limits.tensor_budget():
        raise ModelFileError(
            f"{spec['path']}: its inputs need {limits.fmt_bytes(declared)}, over the "
            f"limit of {limits.fmt_bytes(limits.tensor_budget())} "
            f"({limits.MEMORY_ENV} sets the memory limit)")
    try:
        sess.run(sess.random_inputs(seed=0))
    except (errors.InputError, errors.EngineError) as exc:
        if _out_of_memory(exc):
            raise
        return {"ok": True, "note": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


def _memory_report(spec: dict, detail: str) -> Dict[str, object]:
    return {"error": "ModelFileError", "message": (
        f"{spec['path']}: loading and running it once needs more than the memory limit of "
        f"{limits.fmt_bytes(spec['memory_limit'])} ({limits.MEMORY_ENV} sets it)"
        + (f": {detail}" if detail else ""))}


def _out_of_memory(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("bad_alloc", "out of memory", "failed to allocate",
                                   "unable to allocate", "not enough memory",
                                   "cannot allocate memory", "failed to map segment"))


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
