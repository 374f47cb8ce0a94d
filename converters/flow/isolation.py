"""Verification runs the converted models in a child process, never in the caller's.

An engine written in C++ may segfault or hang on a graph it accepted (MNN on a 1-D
MatMul, on some OneHot graphs): Python cannot catch either. So ``convert()`` hands
every written model and every input set to one child process, which loads each
model and runs it on each set, writing the outputs to files. A crash costs the model
it happened on (its error names the signal and the engine's last words) and a new
child takes the models left; a model that does not finish within its deadline is
killed (by the child's PID) and reported as a hang. One child serves the whole
conversion, so a clean run pays one Python start, not one per model or input.

The deadline of one model, unless given: ``10 s + 0.5 s per MB of the file per input
set``, at most 60 s: a small model that hangs costs seconds, not the runtime's 300 s.
Children are forked from a warm zygote when they can be (``launch.py``: no Python
start per conversion), else spawned.

Run as ``python -m converters.flow.isolation SPEC_JSON EVENT_FD TODO`` (spawned).
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

BASE_TIMEOUT_S = 10.0
PER_MB_PER_SET_S = 0.5
MAX_DEFAULT_TIMEOUT_S = 60.0


@dataclass
class RunJob:
    """One written model to run on every input set (feeds already in its own layout)."""

    target: str
    path: str
    feed_sets: List[Dict[str, np.ndarray]]
    options: Dict[str, object] = field(default_factory=dict)   # edgert.load keyword args
    timeout_s: Optional[float] = None
    count_ops: bool = False         # also count the file's ops (MNN: the converter did not)


@dataclass
class RunOutcome:
    """What the child said about one job: outputs per input set, or why there are none."""

    outputs: Optional[List[Dict[str, np.ndarray]]] = None
    error: Optional[str] = None
    error_type: Optional[str] = None        # an edgert error class name, or "crash"/"hang"
    seconds: float = 0.0
    child_pid: Optional[int] = None         # the verification child that ran it
    op_counts: Dict[str, int] = field(default_factory=dict)   # when the job asked


def default_timeout(path: str, sets: int) -> float:
    """10 s + 0.5 s per MB per input set, at most 60 s."""
    mb = os.path.getsize(path) / 1e6 if os.path.exists(path) else 0.0
    return min(MAX_DEFAULT_TIMEOUT_S, BASE_TIMEOUT_S + PER_MB_PER_SET_S * mb * max(1, sets))


def run_isolated(jobs: Sequence[RunJob], threads: Optional[int] = None
                 ) -> List[RunOutcome]:
    """Each job's outcome, in order. The jobs run in one child process. When it dies by
    a signal, the models it had run are run again, each alone, before anything is
    blamed: an engine that corrupts the heap may let its own run finish and kill the
    process later (MNN's 1-D MatMul: "corrupted size vs. prev_size" at exit)."""
    outcomes: List[Optional[RunOutcome]] = [None] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="edgert-verify-") as tmp:
        spec = _write_spec(jobs, tmp, threads)
        while any(o is None for o in outcomes):
            todo = [j for j, o in enumerate(outcomes) if o is None]
            child = _run_child(spec, todo, jobs, tmp)
            if child.signalled and len(child.started) > 1:
                for j in child.started:
                    outcomes[j] = _solo(spec, j, jobs, tmp)
            else:
                for j, o in child.outcomes.items():
                    outcomes[j] = o
                unfinished = [j for j in child.started if j not in child.outcomes]
                if child.signalled and not unfinished:     # died after its only job
                    unfinished = child.started[-1:]
                for j in unfinished:
                    outcomes[j] = _crash(jobs[j], child.returncode, child.log, child.pid)
            if not child.started and all(outcomes[j] is None for j in todo):
                j = todo[0]      # the child died before its first job: blame that one
                outcomes[j] = _crash(jobs[j], child.returncode, child.log, child.pid)
    return [o for o in outcomes if o is not None]


def _solo(spec: dict, j: int, jobs: Sequence[RunJob], tmp: str) -> RunOutcome:
    """Job ``j`` alone in its own child: a signal, even after it finished, is its crash."""
    child = _run_child(spec, [j], jobs, tmp)
    if child.signalled:
        return _crash(jobs[j], child.returncode, child.log, child.pid)
    return child.outcomes.get(j) or _crash(jobs[j], child.returncode, child.log, child.pid)


@dataclass
class _Child:
    """What one child process did: the jobs it started, their outcomes, how it ended."""

    pid: int
    log: str
    started: List[int] = field(default_factory=list)
    outcomes: Dict[int, RunOutcome] = field(default_factory=dict)
    returncode: Optional[int] = None
    killed: bool = False            # by us, at a deadline

    @property
    def signalled(self) -> bool:
        return not self.killed and self.returncode is not None and self.returncode < 0


def _write_spec(jobs: Sequence[RunJob], tmp: str, threads: Optional[int]) -> dict:
    entries = []
    for j, job in enumerate(jobs):
        feeds = os.path.join(tmp, f"in_{j}.npz")
        arrays, names = {}, []
        for s, feed in enumerate(job.feed_sets):
            names.append(list(feed))
            for k, a in enumerate(feed.values()):
                arrays[f"s{s}_i{k}"] = np.asarray(a, order="C")
        np.savez(feeds, **arrays)
        entries.append({"target": job.target, "path": os.path.abspath(job.path),
                        "inputs": feeds, "input_names": names, "options": job.options,
                        "out": os.path.join(tmp, f"out_{j}.npz"), "count_ops": job.count_ops,
                        "report": os.path.join(tmp, f"out_{j}.json")})
    spec = {"jobs": entries, "threads": threads}
    with open(os.path.join(tmp, "spec.json"), "w") as f:
        json.dump(spec, f)
    return spec


def _run_child(spec: dict, todo: List[int], jobs: Sequence[RunJob], tmp: str) -> _Child:
    """One child over the ``todo`` jobs (``launch.start``: forked from the warm zygote, or
    spawned), watched through the events it reports; the job running at a deadline is
    killed with its child and reported as a hang."""
    from converters.flow.launch import start

    log_path = os.path.join(tmp, f"child_{'_'.join(map(str, todo))}.log")
    run = start(os.path.join(tmp, "spec.json"), todo, log_path)
    child = _Child(0, log_path)
    try:
        _watch(run, spec, jobs, child)
    finally:
        child.returncode = run.finish()
        child.pid = run.pid or 0
        for o in child.outcomes.values():
            o.child_pid = child.pid
    return child


def _watch(run, spec: dict, jobs: Sequence[RunJob], child: _Child) -> None:
    """Read the child's events until it ends; at a job's deadline, kill it."""
    current, started, buf = None, time.monotonic(), b""
    deadline_hit = False
    while True:
        limit = None
        if current is not None and not deadline_hit:
            job = jobs[current]
            limit = job.timeout_s or default_timeout(job.path, len(job.feed_sets))
        elif deadline_hit:
            limit = 10.0            # after the kill: the end should follow at once
        wait = None if limit is None else max(0.0, started + limit - time.monotonic())
        if not select.select([run.events_fd], [], [], wait)[0]:
            if deadline_hit:        # no end after the kill: give up on this child
                return
            run.kill()
            deadline_hit, child.killed, started = True, True, time.monotonic()
            child.outcomes[current] = _hang(jobs[current], limit)
            continue
        chunk = os.read(run.events_fd, 4096)
        if not chunk:               # the child (or the zygote) is gone
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            verb, _, arg = line.decode().partition(" ")
            if run.event(verb, arg):
                return
            if deadline_hit:
                continue
            if verb == "start":
                current, started = int(arg), time.monotonic()
                child.started.append(current)
            elif verb == "done":
                j = int(arg)
                child.outcomes[j] = _read_outcome(spec["jobs"][j], time.monotonic() - started)
                current = None


def _hang(job: RunJob, limit: Optional[float]) -> RunOutcome:
    return RunOutcome(
        error=f"{job.target}: the converted model did not finish loading and running "
              f"{len(job.feed_sets)} input set(s) within {limit:.0f} s in the verification "
              f"child: the engine hung (or is slower than that; raise verify_timeout)",
        error_type="hang", seconds=float(limit or 0))


def _crash(job: RunJob, code: Optional[int], log_path: str, pid: int) -> RunOutcome:
    try:
        with open(log_path, "rb") as f:
            tail = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()][-3:]
    except OSError:
        tail = []
    if code is not None and code < 0:
        try:
            how = signal.Signals(-code).name
        except ValueError:
            how = f"signal {-code}"
    else:
        how = f"exit code {code}"
    return RunOutcome(
        error=f"{job.target}: the engine crashed ({how}) loading or running the converted "
              f"model in the verification child" + (f" (it said: {' / '.join(tail)})"
                                                      if tail else ""),
        error_type="crash", child_pid=pid)


def _read_outcome(entry: dict, seconds: float) -> RunOutcome:
    with open(entry["report"]) as f:
        report = json.load(f)
    if report.get("error"):
        return RunOutcome(error=report["message"], error_type=report["error"], seconds=seconds)
    with np.load(entry["out"], allow_pickle=False) as data:
        outputs = [{name: data[f"s{s}_o{k}"] for k, name in enumerate(names)}
                   for s, names in enumerate(report["output_names"])]
    return RunOutcome(outputs=outputs, seconds=seconds,
                      op_counts=dict(report.get("op_counts") or {}))


# -- the child ----------------------------------------------------------------------------

def _run_job(entry: dict, threads: Optional[int]) -> None:
    import edgert
    from edgert.errors import EdgertError

    report: dict = {}
    arrays = {}
    try:
        with np.load(entry["inputs"], allow_pickle=False) as data:
            sets = [{n: data[f"s{s}_i{k}"] for k, n in enumerate(names)}
                    for s, names in enumerate(entry["input_names"])]
        sess = edgert.load(entry["path"], threads=threads, check="structure",
                           **entry["options"])
        try:
            names_per_set = []
            for s, feeds in enumerate(sets):
                out = sess.run(feeds)
                names_per_set.append(list(out))
                arrays.update({f"s{s}_o{k}": np.asarray(v) for k, v in enumerate(out.values())})
        finally:
            sess.close()
        report = {"output_names": names_per_set}
        if entry.get("count_ops") and entry["path"].endswith(".mnn"):
            report["op_counts"] = _mnn_op_counts(entry["path"])
    except EdgertError as exc:
        report = {"error": type(exc).__name__, "message": f"{entry['target']}: {exc}"}
    except Exception as exc:  # noqa: BLE001 - an engine binding's own exception, not a crash
        report = {"error": "EngineError",
                  "message": f"{entry['target']}: {type(exc).__name__}: {exc}"}
    np.savez(entry["out"], **arrays)
    with open(entry["report"], "w") as f:
        json.dump(report, f)


def _mnn_op_counts(path: str) -> Dict[str, int]:
    """The converter child's count (``converters.mnn._convert_child.count_ops``), here
    where MNN is already loaded; empty when MNN cannot say."""
    from converters.mnn._convert_child import count_ops
    from edgert.native_output import capture_native_output

    try:
        with capture_native_output():
            return count_ops(path)
    except Exception:  # noqa: BLE001 - counts are a nicety; the outputs are what matter
        return {}


def run_jobs(spec_path: str, todo: Sequence[int], events_fd: int) -> None:
    """The child's work: each job of ``todo``, announced on ``events_fd`` (a spawned
    child's own pipe, or the zygote's, shared with it: lines under PIPE_BUF are atomic)."""
    import gc

    with open(spec_path) as f:
        spec = json.load(f)
    for j in todo:
        os.write(events_fd, f"start {j}\n".encode())
        _run_job(spec["jobs"][j], spec.get("threads"))
        gc.collect()            # free the engine now: a corrupted heap shows here, not later
        os.write(events_fd, f"done {j}\n".encode())


if __name__ == "__main__":
    run_jobs(sys.argv[1], [int(x) for x in sys.argv[3].split(",") if x], int(sys.argv[2]))
