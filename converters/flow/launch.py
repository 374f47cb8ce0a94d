"""How verification's child processes start: forked from a warm zygote, or spawned.

A spawned child pays for a Python start and numpy's import (0.1 s of CPU, 0.3 - 0.5 s
on a loaded machine) before it runs anything: more than the runs of a small model, paid
once per conversion (about 3,000 times in a conformance sweep). So the first
verification starts a zygote, a process that imports numpy, edgert and the engines'
Python modules and then only forks. Each verification child is a fork of it: a process
of its own (its own heap, so a crash or a corrupted heap is its own), started in
milliseconds. No engine runtime and no model is ever loaded in the zygote, so forking
it is safe (numpy's OpenBLAS thread, the one thread it has, is fork-safe). It exits
when the caller does: its request pipe closes. A zygote serves one child at a time, so
there are up to ``POOL_SIZE`` of them: the targets of one conversion are verified at
once, each as soon as it is written (``converters.flow.stages``). ``warm()`` starts them
ahead of need, while the conversion's first stages run (their Python start and imports
are then off the critical path). Where fork is missing, where a zygote cannot start, or
while every zygote is busy, children are spawned.

Both kinds report on one pipe, one line per event: ``pid N`` (a forked child, first),
``start J`` / ``done J`` per job, and ``exit N RC`` from the zygote when a forked child
ended (a spawned child's end is the pipe's end and its exit status).

Run as ``python -m converters.flow.launch REQUEST_FD EVENT_FD`` (the zygote).
"""
from __future__ import annotations

import atexit
import gc
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# zygotes kept: one per target a conversion verifies at once (MNN and TFLite). Each idle
# zygote holds numpy, edgert and the engines' Python modules (about 60 MB resident).
POOL_SIZE = 2
_LOCKS = [threading.Lock() for _ in range(POOL_SIZE)]
_ZYGOTES: List[Optional["Zygote"]] = [None] * POOL_SIZE


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Run:
    """One child running jobs: where its events come from, how to stop it, its end."""

    events_fd: int
    pid: Optional[int] = None
    returncode: Optional[int] = None

    def event(self, verb: str, arg: str) -> bool:
        """Handle a launcher's own event; True when the child has ended."""
        return False

    def kill(self) -> None:
        raise NotImplementedError

    def finish(self) -> Optional[int]:
        """Wait for the end (after the events ended); the exit status (negative: signal)."""
        raise NotImplementedError


class SpawnedRun(Run):
    """A fresh ``python -m converters.flow.isolation`` process."""

    def __init__(self, spec_path: str, todo: List[int], log_path: str) -> None:
        read_fd, write_fd = os.pipe()
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "converters.flow.isolation", spec_path, str(write_fd),
                 ",".join(map(str, todo))],
                stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=_env())
        os.close(write_fd)
        self.events_fd, self.pid = read_fd, self.proc.pid

    def kill(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass

    def finish(self) -> Optional[int]:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        os.close(self.events_fd)
        self.returncode = self.proc.returncode
        return self.returncode


class ForkedRun(Run):
    """A fork of the zygote; its end comes as the zygote's ``exit`` event."""

    def __init__(self, zygote: "Zygote", slot: int) -> None:
        self.zygote, self.slot = zygote, slot
        self.events_fd = zygote.events_fd

    def event(self, verb: str, arg: str) -> bool:
        if verb == "pid":
            self.pid = int(arg)
        elif verb == "exit":
            pid, _, rc = arg.partition(" ")
            self.pid, self.returncode = int(pid), int(rc)
            return True
        return False

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)      # our zygote's child, by its id
            except ProcessLookupError:
                pass

    def finish(self) -> Optional[int]:
        if self.returncode is None:          # the zygote went away mid-run
            self.kill()
            self.zygote.close()
        _LOCKS[self.slot].release()
        return self.returncode


class Zygote:
    """The warm process verification children are forked from."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        req_r, self.req_w = os.pipe()
        self.events_fd, ev_w = os.pipe()
        self.log = open(os.devnull, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "converters.flow.launch", str(req_r), str(ev_w)],
            stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(req_r, ev_w), env=_env())
        os.close(req_r)
        os.close(ev_w)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def launch(self, request: dict) -> ForkedRun:
        """Fork a child for ``request``: verification jobs (``spec``, ``todo``) or a
        function call (``call``, ``arg``); its output goes to ``request["log"]``."""
        os.write(self.req_w, (json.dumps(request) + "\n").encode())
        return ForkedRun(self, self.slot)

    def close(self) -> None:
        """Close the request pipe (the zygote exits on it) and reap the process."""
        if _ZYGOTES[self.slot] is self:
            _ZYGOTES[self.slot] = None
        for fd in (self.req_w, self.events_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _ready(slot: int) -> "Zygote":
    """The zygote of ``slot`` (its lock held), started when it is missing or dead."""
    zygote = _ZYGOTES[slot]
    if zygote is None or not zygote.alive():
        if zygote is not None:
            zygote.close()
        zygote = _ZYGOTES[slot] = Zygote(slot)
        atexit.register(zygote.close)
    return zygote


def _forked(request: dict, start: bool = True) -> Optional[ForkedRun]:
    """``request`` run by a child forked from a free zygote (started on first use, unless
    ``start`` is False: then only a running one serves); None when fork is missing, every
    zygote is busy or none can start."""
    if hasattr(os, "fork"):
        for slot, lock in enumerate(_LOCKS):
            if not lock.acquire(blocking=False):
                continue
            zygote = _ZYGOTES[slot]
            if not start and (zygote is None or not zygote.alive()):
                lock.release()
                continue
            try:   # the run releases the slot's lock at its finish
                return _ready(slot).launch(request)
            except OSError:
                lock.release()
                break
    return None


def start(spec_path: str, todo: List[int], log_path: str) -> Run:
    """A child running ``todo`` of the spec: forked from a free zygote, else spawned."""
    run = _forked({"spec": spec_path, "todo": todo, "log": log_path})
    return run if run is not None else SpawnedRun(spec_path, todo, log_path)


class CallTimeout(Exception):
    """``call``'s child did not end by its deadline (it was killed)."""


def call(function: str, arg: object, log_path: str, timeout_s: float) -> Optional[int]:
    """``function(arg)`` (``"package.module:name"``, returning an exit code) in a child
    forked from a free zygote, its stdout and stderr (the C library's too) written to
    ``log_path``: its exit status (negative: the signal that ended it), or None when no
    zygote is running and free (the caller then starts a process of its own: a zygote is
    not started for a call, its imports cost more than a small child's start). A child
    still running at ``timeout_s`` is killed and ``CallTimeout`` raised. MNN's converter
    runs so (``converters.mnn.backend.run_converter``) when verification has started the
    zygotes: the child's Python start and imports are the zygote's, paid once per session
    instead of once per conversion."""
    run = _forked({"call": function, "arg": arg, "log": log_path}, start=False)
    if run is None:
        return None
    timed_out = False
    try:
        timed_out = not _await_exit(run, time.monotonic() + timeout_s)
        if timed_out:
            run.kill()
            _await_exit(run, time.monotonic() + 10.0)
    finally:
        rc = run.finish()           # the slot is free again (a lost zygote is closed)
    if timed_out:
        raise CallTimeout(f"{function} did not finish within {timeout_s:.0f} s")
    return rc if rc is not None else -signal.SIGKILL


def _await_exit(run: ForkedRun, deadline: float) -> bool:
    """Read ``run``'s events until its exit (True), the zygote's end (True: ``finish``
    then sees no status) or ``deadline`` (False)."""
    buf = b""
    while True:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([run.events_fd], [], [], wait)[0]:
            return False
        chunk = os.read(run.events_fd, 4096)
        if not chunk:
            return True
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            verb, _, arg = line.decode().partition(" ")
            if run.event(verb, arg):
                return True


def warm(count: int = POOL_SIZE) -> None:
    """Start up to ``count`` zygotes now (they import while the caller works), so the
    verifications to come fork at once. Never blocks: a busy slot is left as it is, and
    a zygote that cannot start is left to ``start``."""
    if not hasattr(os, "fork"):
        return
    for slot in range(min(count, POOL_SIZE)):
        if _LOCKS[slot].acquire(blocking=False):
            try:
                _ready(slot)
            except OSError:
                pass
            finally:
                _LOCKS[slot].release()


# -- the zygote -----------------------------------------------------------------------------

def _preload() -> None:
    """What every child needs, imported once: numpy, edgert, the engines' modules (their
    runtimes are created only in the children)."""
    import numpy  # noqa: F401

    import edgert  # noqa: F401
    from converters.flow import isolation  # noqa: F401
    for name in ("edgert.engines.mnn", "edgert.engines.litert"):
        try:
            __import__(name)
        except ImportError:
            pass
    try:
        from edgert.engines.mnn import _mnn
        _mnn()
    except ImportError:
        pass
    try:   # LiteRT's Python wrapper and its library (no interpreter is made here)
        from edgert.engines.litert import _import_interpreter
        _import_interpreter()
    except Exception:  # noqa: BLE001 - missing, or fails to import: the child will say
        pass


def _serve(req_fd: int, ev_fd: int) -> int:
    _preload()
    # what every child inherits stays out of their collections (``run_jobs`` collects
    # after each job) and out of copy-on-write: the collector would touch every page
    gc.freeze()
    requests = os.fdopen(req_fd, "r")
    for line in requests:                   # the caller's end closed: done
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:                        # the child: verification jobs or a call
            code = 1
            try:
                requests.close()
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.write(ev_fd, f"pid {os.getpid()}\n".encode())
                if "call" in req:
                    code = _call(req["call"], req["arg"])
                else:
                    from converters.flow.isolation import run_jobs

                    run_jobs(req["spec"], req["todo"], ev_fd)
                    code = 0
            finally:
                _flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        os.write(ev_fd, f"exit {pid} {rc}\n".encode())
    return 0


def _call(function: str, arg: object) -> int:
    import importlib
    import traceback

    try:
        module, _, name = function.partition(":")
        return int(getattr(importlib.import_module(module), name)(arg) or 0)
    except BaseException:  # noqa: BLE001 - the child reports it in its log and exit status
        traceback.print_exc()
        return 1


def _flush() -> None:
    """Python's and the C library's buffered output, written before ``os._exit`` (which
    skips both): MNN's converter prints with C stdio."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream has nothing to say
            pass
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - no C library to flush
        pass


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1]), int(sys.argv[2])))
