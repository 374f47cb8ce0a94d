"""Running a plan: devices in parallel, one job at a time per device.

Each device gets a thread (the work is waiting on devices, not computing), its
own queue and its own link. A job that fails on a transient link error is
retried after a reconnect; a job that still fails, or that ran past its
timeout, gets an error row, and then the device is asked for a sign of life: a
device that gives none is marked dropped and its remaining jobs are reported as
not run. Other devices never wait on it. Every outcome is committed to the store
as it happens, so a killed run can be resumed: jobs with an ``ok`` row are
skipped.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from device_farm.inventory import DeviceSpec
from device_farm.store import ResultStore, now_iso
from device_farm.transports.base import (
    CommandTimeout, HostKeyError, TransientTransportError)
from device_farm.worker import DeviceWorker, base_row
from edgert.errors import EdgertError

Event = Dict[str, object]


@dataclass
class FarmOptions:
    """How hard the scheduler tries."""

    retries: int = 2
    retry_delay_s: float = 1.0
    probe_engines: bool = True


@dataclass
class RunSummary:
    run_id: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    dropped: Dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False


class Scheduler:
    def __init__(self, store: ResultStore, run_id: str, options: Optional[FarmOptions] = None,
                 on_event: Optional[Callable[[Event], None]] = None) -> None:
        self.store, self.run_id = store, run_id
        self.options = options or FarmOptions()
        self._emit_cb = on_event
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.summary = RunSummary(run_id)

    def _emit(self, kind: str, device: str, **fields) -> None:
        if self._emit_cb:
            try:
                self._emit_cb(dict(kind=kind, device=device, time=time.time(), **fields))
            except Exception:  # noqa: BLE001 - a display bug must not stop a benchmark run
                pass

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.summary, what, getattr(self.summary, what) + n)

    def run(self, jobs: List, specs: Dict[str, DeviceSpec]) -> RunSummary:
        """Run ``jobs`` on the devices in ``specs`` (by name); block until all are done."""
        t0 = time.monotonic()
        done = self.store.finished_keys(self.run_id)
        queues: "OrderedDict[str, List]" = OrderedDict()
        for job in jobs:
            queues.setdefault(job.device, []).append(job)
        threads = []
        for name, queue in queues.items():
            todo = [j for j in queue if j.key not in done]
            skipped = len(queue) - len(todo)
            if skipped:
                self._count("skipped", skipped)
            self._emit("device_queued", name, total=len(queue), skipped=skipped)
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
        self.summary.wall_s = time.monotonic() - t0
        return self.summary

    # -- one device ---------------------------------------------------------------------------
    def _device_loop(self, spec: DeviceSpec, jobs: List) -> None:
        if not jobs:
            self._emit("device_done", spec.name)
            return
        worker = DeviceWorker(spec)
        self._emit("device_connecting", spec.name)
        try:
            info = self._with_retries(spec.name, None,
                                      lambda: worker.connect(self.options.probe_engines), worker)
        except EdgertError as exc:
            reason = f"device unavailable: {exc}"
            self.store.save_device(self.run_id, spec.name, "unavailable", spec.public_dict(),
                                   None, str(exc))
            self._emit("device_failed", spec.name, error=reason)
            for job in jobs:
                self._record_error(job, spec, None, reason, attempts=0)
            return
        self.store.save_device(self.run_id, spec.name, "online", spec.public_dict(),
                               info.to_dict())
        self._emit("device_ready", spec.name, info=info.to_dict())
        dropped: Optional[str] = None
        try:
            try:
                worker.cache.prefetch([(j.model.sha256, j.model.name) for j in jobs])
            except EdgertError:
                pass  # only an optimisation: each job checks its own files anyway
            for job in jobs:
                if self._stop.is_set():
                    break
                if dropped:
                    self._record_error(job, spec, info, f"not run: {dropped}", attempts=0)
                    continue
                dropped = self._run_one(worker, spec, job)
        finally:
            worker.close()
        if dropped:
            with self._lock:
                self.summary.dropped[spec.name] = dropped
            self.store.save_device(self.run_id, spec.name, "dropped", spec.public_dict(),
                                   info.to_dict(), dropped)
        self._emit("device_done", spec.name, dropped=dropped)

    def _run_one(self, worker: DeviceWorker, spec: DeviceSpec, job) -> Optional[str]:
        """Run one job and store its row; return why the device dropped, if it did."""
        row = base_row(self.run_id, job, spec, worker.info)
        self._emit("job_start", spec.name, job=job.label, key=job.key)
        attempts = [0]

        def attempt():
            attempts[0] += 1
            return worker.run_job(job)

        t0 = time.monotonic()
        row["duration_s"] = None
        try:
            metrics = self._with_retries(spec.name, job, attempt, worker)
            row["duration_s"] = time.monotonic() - t0
        except HostKeyError as exc:
            self._record_error(job, spec, worker.info, str(exc), attempts[0], row)
            return f"refused: {exc}"
        except (TransientTransportError, CommandTimeout) as exc:
            self._record_error(job, spec, worker.info, str(exc), attempts[0], row)
            if worker.alive():
                return None
            worker.reset_link()
            return None if worker.alive() else f"device {spec.name} stopped answering ({exc})"
        except EdgertError as exc:
            self._record_error(job, spec, worker.info, str(exc), attempts[0], row)
            return None
        except Exception as exc:  # noqa: BLE001 - one broken job must not end the others
            self._record_error(job, spec, worker.info,
                               f"internal error: {type(exc).__name__}: {exc}", attempts[0], row)
            return None
        row.update(metrics, status="ok", attempts=attempts[0], finished_at=now_iso())
        self.store.add_result(row)
        self._count("ok")
        self._emit("job_done", spec.name, job=job.label, key=job.key,
                   median_ms=row.get("median_ms"), mean_ms=row.get("mean_ms"),
                   throttled=bool(row.get("throttled")))
        return None

    def _with_retries(self, device: str, job, fn, worker: DeviceWorker):
        """Call ``fn``; on a transient link error reconnect and retry. The error raised
        in the end names the first failure (the cause) and the last."""
        first: Optional[Exception] = None
        last: Optional[Exception] = None
        for i in range(self.options.retries + 1):
            if i:
                self._emit("retry", device, job=job.label if job else None, attempt=i + 1,
                           error=str(last))
                time.sleep(self.options.retry_delay_s)
                worker.reset_link()
            try:
                return fn()
            except TransientTransportError as exc:
                first, last = first or exc, exc
        assert first is not None and last is not None
        if last is first or str(last) == str(first):
            raise first
        n = self.options.retries
        raise TransientTransportError(f"{first}; {n} retr{'y' if n == 1 else 'ies'} failed, "
                                      f"the last with: {last}")

    def _record_error(self, job, spec: DeviceSpec, info, error: str, attempts: int,
                      row: Optional[Dict[str, object]] = None) -> None:
        row = dict(row or base_row(self.run_id, job, spec, info))
        row.update(status="error", error=error, attempts=attempts, finished_at=now_iso())
        self.store.add_result(row)
        self._count("failed")
        self._emit("job_failed", spec.name, job=job.label, key=job.key, error=error)
