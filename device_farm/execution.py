"""One job on one connected device, and its row: the part both farm paths share.

The one-machine scheduler (``scheduler.py``: a thread per device, a plan run to
the end) and the team farm's agents (``team/agent.py``: jobs taken from the
queue) run a job the same way, with the same retries, the same row and the
same store API, so a result looks the same whichever way it came.

A job that fails on a transient link error is retried after a reconnect; a job
that still fails, or that ran past its timeout, gets an ``error`` row, and then
the device is asked for a sign of life: ``run`` returns why the device dropped
if it gives none.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from device_farm.store import ResultStore, now_iso
from device_farm.transports.base import CommandTimeout, HostKeyError, TransientTransportError
from device_farm.worker import DeviceWorker, base_row
from edgert.errors import EdgertError

Emit = Callable[..., None]


@dataclass
class FarmOptions:
    """How hard the farm tries, and how long it waits for a busy device."""

    retries: int = 2
    retry_delay_s: float = 1.0
    probe_engines: bool = True
    lock_wait_s: float = 3600.0


class JobRunner:
    """Runs jobs on connected devices and writes their rows.

    ``emit(kind, device, **fields)`` reports progress; ``settle(job, status)`` is told
    each job's outcome; ``agent`` (the team farm) is written into each row."""

    def __init__(self, store: ResultStore, options: FarmOptions, emit: Emit,
                 settle: Callable[[object, str], None], agent: Optional[str] = None) -> None:
        self.store, self.options, self.emit, self.settle = store, options, emit, settle
        self.agent = agent

    def _base(self, run_id: str, job, spec, info) -> Dict[str, object]:
        row = base_row(run_id, job, spec, info)
        if self.agent:
            row["agent"] = self.agent
        return row

    def run(self, worker: DeviceWorker, spec, job, run_id: str,
            lock_wait_s: float) -> Optional[str]:
        """Run one job (the device's lease held) and store its row; return why the device
        dropped, if it did."""
        row = self._base(run_id, job, spec, worker.info)
        row["lock_wait_s"] = lock_wait_s
        self.emit("job_start", spec.name, job=job.label, key=job.key, run_id=run_id)
        attempts = [0]

        def attempt():
            attempts[0] += 1
            return worker.run_job(job)

        t0 = time.monotonic()
        try:
            metrics = self.with_retries(spec.name, job, attempt, worker)
        except HostKeyError as exc:
            self.record(run_id, job, spec, worker.info, "error", str(exc), attempts[0], row)
            return f"refused: {exc}"
        except (TransientTransportError, CommandTimeout) as exc:
            self.record(run_id, job, spec, worker.info, "error", str(exc), attempts[0], row)
            if worker.alive():
                return None
            worker.reset_link()
            return None if worker.alive() else f"device {spec.name} stopped answering ({exc})"
        except EdgertError as exc:
            self.record(run_id, job, spec, worker.info, "error", str(exc), attempts[0], row)
            return None
        except Exception as exc:  # noqa: BLE001 - one broken job must not end the others
            self.record(run_id, job, spec, worker.info, "error",
                        f"internal error: {type(exc).__name__}: {exc}", attempts[0], row)
            return None
        row.update(metrics, status="ok", attempts=attempts[0], finished_at=now_iso(),
                   duration_s=time.monotonic() - t0)
        self.store.add_result(row)
        self.settle(job, "ok")
        self.emit("job_done", spec.name, job=job.label, key=job.key, run_id=run_id,
                  median_ms=row.get("median_ms"), mean_ms=row.get("mean_ms"),
                  throttled=bool(row.get("throttled")))
        return None

    def with_retries(self, device: str, job, fn, worker: DeviceWorker):
        """Call ``fn``; on a transient link error reconnect and retry. The error raised
        in the end names the first failure (the cause) and the last."""
        first: Optional[Exception] = None
        last: Optional[Exception] = None
        for i in range(self.options.retries + 1):
            if i:
                self.emit("retry", device, job=job.label if job else None, attempt=i + 1,
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

    def record(self, run_id: str, job, spec, info, status: str, error: str, attempts: int,
               row: Optional[Dict[str, object]] = None) -> None:
        """Store a failed or not-run job's row."""
        row = dict(row or self._base(run_id, job, spec, info))
        row.update(status=status, error=error, attempts=attempts, finished_at=now_iso())
        self.store.add_result(row)
        self.settle(job, status)
        self.emit("job_failed" if status == "error" else "job_not_run", spec.name,
                  job=job.label, key=job.key, error=error, run_id=run_id)
