"""Submitting to the team farm and following a run: ``edgert farm submit``,
``wait`` and (through the store) ``report``.

``submit`` plans the jobs exactly as ``farm bench`` does (``jobs.plan_jobs``, the
runner each device's agent published), keeps the model files' bytes in the store
(once per content) so an agent on another machine can fetch them, records the
run and its plan, queues one job per planned job and returns the run id at
once. A device no live agent serves is refused by default, naming the devices
that are served; ``agent_wait_s`` lets a run wait that long for one (then its
jobs are recorded as not run, never a silent wait).
"""
from __future__ import annotations

import getpass
import platform
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence

from device_farm.errors import DeviceError
from device_farm.store import ResultStore
from device_farm.store import location as loc
from device_farm.team import queue as q
from device_farm.team.janitor import JanitorOptions, live_devices, settle_run, sweep
from edgert.errors import EdgertError

#: how long a run's jobs wait for an agent of their device by default, when allowed to
AGENT_WAIT_S = 600.0


class NoAgent(DeviceError):
    """A submitted device is served by no live agent."""


def _version() -> str:
    import edgert

    return edgert.__version__


def submit(store_url: str, models: Sequence[str], *, devices: Optional[Sequence[str]] = None,
           tags: Optional[Sequence[str]] = None, precisions: Sequence[str] = ("auto",),
           engine: Optional[str] = None, threads: Optional[int] = None, runs: int = 50,
           warmup: int = 5, cooldown_s: float = 0.0, timeout_s: float = 600.0,
           retries: int = 2, run_id: Optional[str] = None,
           agent_wait_s: Optional[float] = None, max_attempts: int = 2,
           argv: Optional[List[str]] = None) -> str:
    """Queue ``models`` on ``devices``; return the run id (nothing waits for a job)."""
    from device_farm.farm import PRECISIONS
    from device_farm.jobs import ModelFile

    loc.conninfo(store_url)   # a queue needs PostgreSQL: say so before anything else
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise EdgertError(f"precision(s) {bad}: accepted {', '.join(PRECISIONS)}")
    if runs < 1 or warmup < 0 or timeout_s <= 0 or max_attempts < 1:
        raise EdgertError("runs must be >= 1, warmup >= 0, timeout > 0, max attempts >= 1")
    files = [ModelFile.from_path(m) for m in models]
    settings = dict(engine=engine, threads=threads, runs=runs, warmup=warmup,
                    cooldown_s=cooldown_s, timeout_s=timeout_s)
    options: Dict[str, object] = {"retries": retries, "max_attempts": max_attempts,
               "agent_wait_s": AGENT_WAIT_S if agent_wait_s is None else agent_wait_s}
    return _queue_run(store_url, files, devices, tags, precisions, settings, options,
                      agent_wait_s is not None, run_id, argv, upload=True)


def resubmit(store_url: str, run_id: str, runs: Optional[int] = None) -> str:
    """Queue a run again: the same files (from the store), devices and settings
    (``runs`` changed if given). The dashboard's "queue again", with --allow-submit."""
    import json

    from device_farm.jobs import Job

    with ResultStore(store_url) as store:
        meta = store.run(run_id)
        if not meta:
            raise EdgertError(f"no run {run_id!r} in {store.name}")
        jobs = [Job.from_dict(d) for d in store.planned_jobs(run_id)]
        missing = store.missing_model_files({j.model.sha256 for j in jobs})
    if not jobs:
        raise EdgertError(f"run {run_id} has no jobs to queue again")
    if missing:
        raise EdgertError(f"run {run_id}: the bytes of {len(missing)} of its files are not in "
                          "the store (a run of `farm bench`): submit the files again")
    first = jobs[0]
    files = list({j.model.sha256: j.model for j in jobs}.values())
    precisions = list(dict.fromkeys(j.precision for j in jobs))
    settings = dict(engine=first.engine, threads=first.threads, runs=runs or first.runs,
                    warmup=first.warmup, cooldown_s=first.cooldown_s,
                    timeout_s=first.timeout_s)
    opts = json.loads(str(meta.get("options_json") or "{}"))
    options = {k: opts[k] for k in ("retries", "max_attempts", "agent_wait_s") if k in opts}
    return _queue_run(store_url, files, list(dict.fromkeys(j.device for j in jobs)), None,
                      precisions, settings, options, False, None,
                      ["dashboard", "again", run_id], upload=False)


def _queue_run(store_url: str, files: List, devices, tags, precisions, settings,
               options: Dict[str, object], allow_waiting: bool, run_id: Optional[str],
               argv: Optional[List[str]], upload: bool) -> str:
    from device_farm.farm import new_run_id
    from device_farm.jobs import plan_jobs
    from device_farm.runners import runner_for

    q.ensure_schema(store_url)
    with ResultStore(store_url) as store:
        specs = _devices(store, devices, tags, allow_waiting)
        jobs = plan_jobs(files, specs, runner_for, precisions, **settings)
        run_id = run_id or new_run_id()
        if store.run(run_id):
            raise EdgertError(f"run {run_id!r} already exists in {store.name}")
        if upload:
            for sha in store.missing_model_files({f.sha256 for f in files}):
                f = next(f for f in files if f.sha256 == sha)
                with open(f.path, "rb") as fh:
                    store.put_model_file(sha, f.name, fh.read())
        store.start_run(run_id, platform.node(), _version(), list(argv or sys.argv),
                        dict(options, devices=[s.name for s in specs]),
                        [j.to_dict() for j in jobs], mode="queue",
                        submitted_by=f"{getpass.getuser()}@{platform.node()}")
        app = q.make_app(store_url)
        with app.open():
            q.defer_jobs(app, run_id, jobs)
    return run_id


def _devices(store: ResultStore, names: Optional[Sequence[str]], tags: Optional[Sequence[str]],
             allow_waiting: bool) -> List[SimpleNamespace]:
    """The devices to plan for, as their agents described them."""
    import json

    known = {str(r["name"]): r for r in store.device_states()}
    live = live_devices(store)
    if names:
        twice = sorted({n for n in names if list(names).count(n) > 1})
        if twice:
            raise DeviceError(f"device(s) named twice: {', '.join(twice)}")
        chosen = list(names)
    else:
        chosen = sorted(live)
        if not chosen:
            raise NoAgent(f"no agent serves any device on {store.name}: start "
                          "`edgert farm agent --devices ...` on each machine with devices")
    served = ", ".join(f"{n} ({r['agent_id']})" for n, r in sorted(live.items())) or "none"
    missing = [n for n in chosen if n not in live]
    if missing and not allow_waiting:
        raise NoAgent(
            f"no live agent serves device(s) {', '.join(missing)} (served now: {served}); "
            "start `edgert farm agent --devices " + ",".join(missing) + "` on the machine they "
            "are attached to, or submit with --wait-for-agent SECONDS to queue for it anyway")
    unknown = [n for n in missing if n not in known]
    if unknown:
        raise NoAgent(f"device(s) {', '.join(unknown)}: no agent ever served a device of "
                      f"that name on {store.name} (served now: {served}), so there is no "
                      "description to plan its jobs with")
    specs = []
    for n in chosen:
        spec = json.loads(str(known[n]["spec_json"] or "{}"))
        specs.append(SimpleNamespace(name=n, runners=spec.get("runners") or {},
                                     tags=spec.get("tags") or []))
    if tags:
        specs = [s for s in specs if set(tags) <= set(s.tags)]
        if not specs:
            raise DeviceError(f"no chosen device carries the tag(s) {', '.join(tags)}")
    return specs


@dataclass
class RunState:
    """Where a queued run is: ended jobs by status, what runs now, what waits."""

    run_id: str
    status: str
    planned: int
    ok: int = 0
    failed: int = 0
    not_run: int = 0
    running: Dict[str, str] = field(default_factory=dict)    # device -> "job (agent)"
    queued: Dict[str, int] = field(default_factory=dict)     # device -> jobs in the queue
    no_agent: List[str] = field(default_factory=list)        # queued devices nobody serves

    @property
    def ended(self) -> int:
        return self.ok + self.failed + self.not_run

    @property
    def done(self) -> bool:
        return self.ended >= self.planned

    def line(self) -> str:
        parts = [f"run {self.run_id}: {self.ended}/{self.planned} ended ({self.ok} ok, "
                 f"{self.failed} failed, {self.not_run} not run)"]
        if self.running:
            parts.append("running: " + ", ".join(f"{d} {j}" for d, j in
                                                 sorted(self.running.items())))
        if self.no_agent:
            parts.append("WAITING FOR AN AGENT: no live agent serves "
                         + ", ".join(sorted(self.no_agent)))
        return "; ".join(parts)

    def to_dict(self) -> Dict[str, object]:
        d = dict(self.__dict__)
        d["ended"], d["done"] = self.ended, self.done
        return d


def run_state(store: ResultStore, run_id: str) -> RunState:
    import psycopg

    meta = store.run(run_id)
    if not meta:
        raise EdgertError(f"no run {run_id!r} in {store.name}")
    rows = store.results(run_id)
    state = RunState(run_id, str(meta["status"]), len(store.planned_jobs(run_id)),
                     ok=sum(r["status"] == "ok" for r in rows),
                     failed=sum(r["status"] == "error" for r in rows),
                     not_run=sum(r["status"] == "not_run" for r in rows))
    if not store.is_postgres or meta.get("mode") != "queue":
        return state
    live = live_devices(store)
    with psycopg.connect(loc.conninfo(store.path), autocommit=True) as conn:
        by_device = q.run_queue_state(conn, run_id)
    for device, counts in by_device.items():
        waiting = counts.get("todo", 0) + counts.get("doing", 0)
        if waiting:
            state.queued[device] = waiting
            if device not in live:
                state.no_agent.append(device)
    for name, dev in live.items():
        if dev.get("busy_run_id") == run_id:
            state.running[name] = f"{dev.get('busy_job')} ({dev['agent_id']})"
    return state


def wait_run(store_url: str, run_id: str, timeout_s: Optional[float] = None,
             on_state: Optional[Callable[[RunState], None]] = None,
             poll_s: float = 0.5) -> RunState:
    """Follow a run until every job ended (or ``timeout_s``); ``on_state`` sees each
    change. Runs the janitor while waiting, so a run whose agents are gone still ends."""
    app = q.make_app(store_url)
    end = None if timeout_s is None else time.monotonic() + timeout_s
    last = None
    with ResultStore(store_url) as store, app.open():
        if not store.run(run_id):
            raise EdgertError(f"no run {run_id!r} in {store.name}")
        next_sweep = 0.0
        while True:
            if time.monotonic() >= next_sweep:
                sweep(store, app, JanitorOptions())
                next_sweep = time.monotonic() + 2.0
            state = run_state(store, run_id)
            if on_state and state.line() != last:
                on_state(state)
                last = state.line()
            if state.done:
                settle_run(store, run_id)
                state.status = str((store.run(run_id) or {}).get("status", state.status))
                return state
            if end is not None and time.monotonic() > end:
                return state
            time.sleep(poll_s)
