"""The isolated first load: open a model in a child process before the user's
process does, so an engine that crashes on a damaged or hostile file kills the
child, not the caller.

The verdict is cached per (file sha256, engine, engine version, options) under
``$EDGERT_CACHE_DIR`` (default ``~/.cache/edgert``), so it costs one child
process per new file. A crash or a hang becomes a ``ModelFileError``; an
ordinary edgert error in the child (the engine refused the file) is re-raised
here with the child's message, without loading the file in this process at all:
an engine that refuses a damaged file in one process may crash on it in another.

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

from edgert import errors
from edgert.errors import ModelFileError
from edgert.files import file_sha256

PROBE_TIMEOUT_S = float(os.environ.get("EDGERT_PROBE_TIMEOUT", "300"))


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
    """Raise ``ModelFileError`` if loading and running ``path`` crashes or hangs a child."""
    spec = {"path": os.path.abspath(path), "format": fmt, "engine": engine,
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
    with tempfile.TemporaryDirectory(prefix="edgert-probe-") as tmp:
        spec["report"] = os.path.join(tmp, "report.json")
        proc = _run_child(path, engine, spec, env)
        report = _read_report(spec["report"])
    if proc.returncode < 0:
        raise _crash_error(path, engine, proc)
    if report.get("error"):
        raise _error_class(report["error"])(report["message"])
    if proc.returncode == 0 and marker:
        try:
            with open(marker, "w") as f:
                f.write(spec["path"] + "\n")
        except OSError:
            pass


def _run_child(path: str, engine: str, spec: dict, env: dict) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "edgert.probe", json.dumps(spec)],
                              capture_output=True, timeout=PROBE_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise ModelFileError(
            f"{path}: {engine} did not finish loading and running the model within "
            f"{PROBE_TIMEOUT_S:.0f} s in the isolated check; the file may be damaged. "
            "Pass check='structure' to skip this check.") from None


def _read_report(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # the child died before writing it
        return {}


def _crash_error(path: str, engine: str, proc: subprocess.CompletedProcess) -> ModelFileError:
    sig = -proc.returncode
    try:
        signame = signal.Signals(sig).name
    except ValueError:
        signame = f"signal {sig}"
    tail = proc.stdout.decode(errors="replace").strip().splitlines()[-3:]
    return ModelFileError(
        f"{path}: {engine} crashed ({signame}) loading or running this file in the "
        f"isolated check: the file is damaged or not a model {engine} can read"
        + (f" (engine said: {' / '.join(tail)})" if tail else ""))


def _error_class(name: str) -> type:
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, errors.EdgertError) else errors.EngineError


def _child(spec_json: str) -> int:
    spec = json.loads(spec_json)
    from edgert.session import load

    report: Dict[str, object] = {}
    try:
        sess = load(spec["path"], engine=spec["engine"], check="structure", **spec["options"])
        # Random inputs may not suit every model (e.g. token ids): an input or run
        # error says nothing about the file, so only load errors are reported.
        try:
            sess.run(sess.random_inputs(seed=0))
        except (errors.InputError, errors.EngineError):
            pass
    except errors.EdgertError as exc:
        report = {"error": type(exc).__name__, "message": str(exc)}
    with open(spec["report"], "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
