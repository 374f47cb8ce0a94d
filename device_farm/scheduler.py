"""Running a plan: devices in parallel, one job at a time per device, and no
failure lost.

Each device gets a thread (the work is waiting on devices, not computing), its
own queue and its own link. Everything that touches a device (connect and
probe, each job) happens under the device's lock (``locks.py``), so a second
farm process on the same device waits instead of spoiling both numbers.

How one job runs and what its row holds is ``execution.JobRunner`` (shared with
the team farm's agents). A job that fails on a transient link error is retried
after a reconnect; a job that still fails, or that ran past its timeout, gets an
``error`` row, and then the device is asked for a sign of life: a device that
gives none is marked dropped and its remaining jobs get ``not_run`` rows. Other devices never wait on
it. Whatever a device's setup raises, of any type, ends that device only: each
of its jobs without a row gets one saying why (a device thread that died used to
take its jobs' rows with it, and the run ended "0 failed"). Every outcome is
committed as it happens, so a killed run can be resumed: jobs with an ``ok`` row
are skipped.
"""
from __future__ import annotations

import os
import platform
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

from device_farm.inventory import DeviceSpec
from device_farm.locks import DeviceBusy, DeviceLocks, Lease, device_key, open_locks
from device_farm.store import ResultStore, now_iso
from device_farm.execution import FarmOptions, JobRunner
from device_farm.worker import DeviceWorker
from edgert.errors import EdgertError

Event = Dict[str, object]


@dataclass
class RunSummary:
    """What happened to the plan: every planned job is in exactly one of ``ok``,
    ``failed`` (ran and failed), ``not_run`` (never started) or ``skipped`` (done by
    an earlier attempt of the run, on resume)."""

    run_id: str
    planned: int = 0
    ok: int = 0
    failed: int = 0
    not_run: int = 0
    skipped: int = 0
    dropped: Dict[str, str] = field(default_factory=dict)
    unavailable: Dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        return self.ok + self.skipped == self.planned and not self.interrupted

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["wall_s"] = round(self.wall_s, 3)
        return d

    def line(self) -> str:
        return (f"run {self.run_id}: {self.planned} planned: {self.ok} ok, {self.failed} "
                f"failed, {self.not_run} not run"
                + (f", {self.skipped} done earlier" if self.skipped else "")
                + (" (interrupted)" if self.interrupted else "") + f"; {self.wall_s:.1f} s")


class Scheduler:
    def __init__(self, store: ResultStore, run_id: str, options: Optional[FarmOptions] = None,
                 on_event: Optional[Callable[[Event], None]] = None,
                 locks: Optional[DeviceLocks] = None) -> None:
        self.store, self.run_id = store, run_id
        self.options = options or FarmOptions()
        self.locks = locks or open_locks()
        self._emit_cb = on_event
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._outcome: Dict[str, str] = {}
        self.summary = RunSummary(run_id)
        self.jobs = JobRunner(store, self.options, self._emit, self._settle)

    def _emit(self, kind: str, device: str, **fields) -> None:
        if self._emit_cb:
            try:
                self._emit_cb(dict(kind=kind, device=device, time=time.time(), **fields))
            except Exception:  # noqa: BLE001 - a display bug must not stop a benchmark run
                pass

    def run(self, jobs: List, specs: Dict[str, DeviceSpec]) -> RunSummary:
        """Run ``jobs`` on the devices in ``specs`` (by name); block until all are done."""
        t0 = time.monotonic()
        done = self.store.finished_keys(self.run_id)
        queues: "OrderedDict[str, List]" = OrderedDict()
        for job in jobs:
            queues.setdefault(job.device, []).append(job)
        self.summary.planned = len(jobs)
        threads, todo_all = [], []
        for name, queue in queues.items():
            todo = [j for j in queue if j.key not in done]
            todo_all += todo
            self.summary.skipped += len(queue) - len(todo)
            self._emit("device_queued", name, total=len(queue), skipped=len(queue) - len(todo))
            t = threading.Thread(target=self._device_loop, args=(specs[name], todo),
                                 name=f"farm-{name}", daemon=True)
            t.start()
            threads.append(t)
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self._stop.set()
            self.summary.interrupted = True
            for t in threads:
                t.join()
        for job in todo_all:   # a thread that died without a word: its jobs still get rows
            if job.key not in self._outcome:
                self._record(job, specs[job.device], None, "not_run",
                             "not run: the device's thread ended without running it", 0)
        self.summary.wall_s = time.monotonic() - t0
        return self.summary

    # -- one device ---------------------------------------------------------------------------
    def _device_loop(self, spec: DeviceSpec, jobs: List) -> None:
        """Everything for one device; whatever it raises ends this device only."""
        worker: Optional[DeviceWorker] = None
        try:
            if jobs:
                worker = DeviceWorker(spec)
                self._device_session(spec, worker, jobs)
        except Exception as exc:  # noqa: BLE001 - one device's surprise must not lose rows
            reason = (str(exc) if isinstance(exc, EdgertError)
                      else f"internal error: {type(exc).__name__}: {exc}")
            self._fail_device(spec, worker, jobs, f"device setup failed: {reason}")
        finally:
            if worker is not None:
                try:
                    worker.close()
                except Exception:  # noqa: BLE001 - closing a broken link may raise anything
                    pass
            self._emit("device_done", spec.name, dropped=self.summary.dropped.get(spec.name))

    def _fail_device(self, spec: DeviceSpec, worker: Optional[DeviceWorker], jobs: List,
                     reason: str) -> None:
        with self._lock:
            self.summary.unavailable[spec.name] = reason
        info = worker.info if worker is not None else None
        self.store.save_device(self.run_id, spec.name, "unavailable", spec.public_dict(),
                               info.to_dict() if info else None, reason)
        self._emit("device_failed", spec.name, error=reason)
        for job in jobs:
            if job.key not in self._outcome:
                self._record(job, spec, info, "not_run", f"not run: {reason}", 0)

    def _lease(self, spec: DeviceSpec, what: str) -> Lease:
        holder = {"pid": os.getpid(), "host": platform.node(), "run_id": self.run_id,
                  "device": spec.name, "job": what, "since": now_iso()}
        return self.locks.acquire(
            device_key(spec), holder, self.options.lock_wait_s, self._stop,
            on_wait=lambda h: self._emit("device_waiting", spec.name, holder=h))

    def _device_session(self, spec: DeviceSpec, worker: DeviceWorker, jobs: List) -> None:
        self._emit("device_connecting", spec.name)
        with self._lease(spec, "connect"):
            try:
                info = self._with_retries(spec.name, None,
                                          lambda: worker.connect(self.options.probe_engines),
                                          worker)
            except EdgertError as exc:
                self._fail_device(spec, worker, jobs, f"device unavailable: {exc}")
                return
            try:
                worker.cache.prefetch([(j.model.sha256, j.model.name) for j in jobs])
            except EdgertError:
                pass  # only an optimisation: each job checks its own files anyway
        self.store.save_device(self.run_id, spec.name, "online", spec.public_dict(),
                               info.to_dict())
        self._emit("device_ready", spec.name, info=info.to_dict())
        dropped: Optional[str] = None
        for job in jobs:
            if self._stop.is_set():
                self._record(job, spec, info, "not_run", "not run: the run was interrupted", 0)
                continue
            if dropped:
                self._record(job, spec, info, "not_run", f"not run: {dropped}", 0)
                continue
            try:
                with self._lease(spec, job.label) as lease:
                    dropped = self._run_one(worker, spec, job, lease.waited_s)
            except DeviceBusy as exc:
                self._record(job, spec, info, "not_run", f"not run: {exc}", 0)
        if dropped:
            with self._lock:
                self.summary.dropped[spec.name] = dropped
            self.store.save_device(self.run_id, spec.name, "dropped", spec.public_dict(),
                                   info.to_dict(), dropped)

    def _run_one(self, worker: DeviceWorker, spec: DeviceSpec, job,
                 lock_wait_s: float) -> Optional[str]:
        return self.jobs.run(worker, spec, job, self.run_id, lock_wait_s)

    def _with_retries(self, device: str, job, fn, worker: DeviceWorker):
        return self.jobs.with_retries(device, job, fn, worker)

    def _settle(self, job, status: str) -> None:
        with self._lock:
            self._outcome[job.key] = status
            name = {"ok": "ok", "error": "failed", "not_run": "not_run"}[status]
            setattr(self.summary, name, getattr(self.summary, name) + 1)

    def _record(self, job, spec: DeviceSpec, info, status: str, error: str, attempts: int,
                row: Optional[Dict[str, object]] = None) -> None:
        self.jobs.record(self.run_id, job, spec, info, status, error, attempts, row)
