"""The farm in one call: plan (models x devices x precisions), run, store.

``bench()`` is what ``edgert farm bench`` and examples call; ``resume()``
finishes a run that was killed, from the plan kept in the store.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from device_farm.inventory import DeviceSpec, Inventory, load_inventory
from device_farm.jobs import Job, ModelFile, plan_jobs
from device_farm.locks import DeviceLocks, describe_holder, device_key, open_locks
from device_farm.runners import runner_for
from device_farm.scheduler import Event, FarmOptions, RunSummary, Scheduler
from device_farm.store import ResultStore, now_iso
from device_farm.store.location import exists as store_exists, is_postgres
from edgert.errors import EdgertError
from device_farm.errors import DeviceError

DEFAULT_DB = "farm_results.sqlite"
PRECISIONS = ("auto", "fp32", "fp16")


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def bench(models: Sequence[str], *, devices: Optional[Sequence[str]] = None,
          tags: Optional[Sequence[str]] = None, inventory: Optional[Inventory] = None,
          db: str = DEFAULT_DB, precisions: Sequence[str] = ("auto",),
          engine: Optional[str] = None, threads: Optional[int] = None, runs: int = 50,
          warmup: int = 5, cooldown_s: float = 0.0, timeout_s: float = 600.0,
          retries: int = 2, run_id: Optional[str] = None,
          on_event: Optional[Callable[[Event], None]] = None,
          argv: Optional[List[str]] = None, lock_wait_s: float = 3600.0,
          locks: Optional[DeviceLocks] = None) -> RunSummary:
    """Benchmark model files on devices; every outcome goes into the store ``db`` (a
    SQLite file, or a PostgreSQL URL: then the devices' locks are the team's too).

    Each device serves one job at a time across every farm process of this machine
    (``locks``; a busy device is waited for up to ``lock_wait_s``)."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise EdgertError(f"precision(s) {bad}: accepted {', '.join(PRECISIONS)}")
    if runs < 1 or warmup < 0 or timeout_s <= 0 or lock_wait_s < 0:
        raise EdgertError("runs must be >= 1, warmup >= 0, timeout > 0 and lock wait >= 0")
    inventory = inventory or load_inventory()
    specs = inventory.select(devices, tags)
    files = [ModelFile.from_path(m) for m in models]
    jobs = plan_jobs(files, specs, runner_for, precisions, engine=engine, threads=threads,
                     runs=runs, warmup=warmup, cooldown_s=cooldown_s, timeout_s=timeout_s)
    run_id = run_id or new_run_id()
    options = FarmOptions(retries=retries, lock_wait_s=lock_wait_s)
    with ResultStore(db) as store:
        if store.run(run_id):
            raise EdgertError(f"run {run_id!r} already exists in {db}; resume it instead")
        store.start_run(run_id, platform.node(), _version(), list(argv or sys.argv),
                        {"devices": [s.name for s in specs], "inventory": inventory.source,
                         "retries": retries, "lock_wait_s": lock_wait_s},
                        [j.to_dict() for j in jobs])
        return _execute(store, run_id, jobs, {s.name: s for s in specs}, options, on_event,
                        locks)


def resume(run_id: Optional[str] = None, *, db: str = DEFAULT_DB,
           inventory: Optional[Inventory] = None, retries: Optional[int] = None,
           on_event: Optional[Callable[[Event], None]] = None,
           lock_wait_s: Optional[float] = None,
           locks: Optional[DeviceLocks] = None) -> RunSummary:
    """Finish a run: redo its jobs that have no ``ok`` row (the latest run by default)."""
    if not store_exists(db):
        raise EdgertError(f"{db}: no results database to resume from")
    inventory = inventory or load_inventory()
    with ResultStore(db) as store:
        run_id = run_id or store.latest_run_id()
        meta = store.run(run_id) if run_id else None
        if not meta:
            raise EdgertError(f"no run {run_id!r} in {db}")
        jobs = [Job.from_dict(d) for d in store.planned_jobs(run_id)]
        specs: Dict[str, DeviceSpec] = {}
        for name in dict.fromkeys(j.device for j in jobs):
            specs[name] = inventory.get(name)
        done = store.finished_keys(run_id)
        for job in jobs:
            if job.key not in done:
                job.check_model_unchanged()
        opts = json.loads(str(meta["options_json"] or "{}"))
        options = FarmOptions(
            retries=opts.get("retries", 2) if retries is None else retries,
            lock_wait_s=opts.get("lock_wait_s", 3600.0) if lock_wait_s is None else lock_wait_s)
        return _execute(store, run_id, jobs, specs, options, on_event, locks)


def _execute(store: ResultStore, run_id: str, jobs: List[Job], specs: Dict[str, DeviceSpec],
             options: FarmOptions, on_event, locks: Optional[DeviceLocks]) -> RunSummary:
    store.set_run_status(run_id, "running")
    if locks is None and is_postgres(store.path):   # the team's devices: the team's locks
        locks = open_locks(store.path)
    scheduler = Scheduler(store, run_id, options, on_event, locks)
    summary = scheduler.run(jobs, specs)
    store.set_run_status(run_id, "interrupted" if summary.interrupted else
                         ("done" if summary.complete else "done-with-errors"),
                         summary.to_dict())
    return summary


def _version() -> str:
    import edgert

    return edgert.__version__


def probe_devices(specs: Sequence[DeviceSpec], engines: bool = True,
                  locks: Optional[DeviceLocks] = None) -> List[Dict[str, object]]:
    """Live state of each device (in parallel): online or the error, and what it is.
    A device another farm process is benchmarking on is not disturbed: its row says
    who holds it (``busy``)."""
    import threading

    from device_farm.worker import DeviceWorker

    locks = locks or open_locks()
    rows: List[Dict[str, object]] = [{} for _ in specs]

    def one(i: int, spec: DeviceSpec) -> None:
        worker = None
        row: Dict[str, object] = {"name": spec.name, "spec": spec.public_dict()}
        key = device_key(spec)
        lease = locks.try_acquire(key, {"pid": os.getpid(), "host": platform.node(),
                                        "run_id": None, "device": spec.name,
                                        "job": "farm devices", "since": now_iso()})
        if lease is None:
            holder = locks.holder(key) or {}
            rows[i] = dict(row, online=None, busy=holder,
                           error=f"busy: {describe_holder(holder)}")
            return
        try:
            worker = DeviceWorker(spec)
            info = worker.connect(engines=engines)
            rows[i] = dict(row, online=True, info=info.to_dict())
        except (EdgertError, DeviceError) as exc:
            rows[i] = dict(row, online=False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one device's surprise must not hide the rest
            rows[i] = dict(row, online=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            if worker is not None:
                worker.close()
            lease.release()

    threads = [threading.Thread(target=one, args=(i, s), daemon=True) for i, s in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows
