"""``edgert farm agent``: the process on each machine that holds devices.

It claims its devices (refused if another live agent serves one: ``claims.py``),
connects and probes them, publishes their state (online, throttled, busy, by
whom) and then takes jobs from their queues only. Each job runs exactly as in
``farm bench``: the job from the run's plan, under the device's lease (a
PostgreSQL advisory lock, so nothing else of the team runs on the device),
through ``execution.JobRunner``, its row written through the same store API.

Heartbeats: the agent's row and its devices' state every ``heartbeat_s``; the
queue worker's own heartbeat beside it. Every agent runs the janitor, which
queues again (bounded) or fails the jobs of agents that died, and ends jobs
waiting for a device no agent serves.

Faults it rides out: a device that drops (its jobs get rows; it is probed again
before its next job), a database restart (the store retries calls on a new
connection, the queue worker is started again, claims are renewed; a job that
was running then finishes and is recorded, its end written in the queue once the
server is back), a job the queue says this agent runs and it does not (its end
lost with a crashed server's last commits: the janitor queues it again or closes
it, ``held.py``), a job delivered twice after a restart (the device's slot runs
one at a time, and a job that already has its row is not run again).
"""
from __future__ import annotations

import asyncio
import getpass
import os
import platform
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, TextIO

from device_farm.errors import DeviceError
from device_farm.execution import FarmOptions, JobRunner
from device_farm.inventory import DeviceSpec, Inventory
from device_farm.locks import DeviceBusy, device_key
from device_farm.store import ResultStore, StoreUnavailable, now_iso
from device_farm.team import queue as q
from device_farm.team.claims import ClaimRefused, Claims, holder_text
from device_farm.team.janitor import JanitorOptions, settle_run, stale_after, sweep
from device_farm.team.models import fetch_model
from device_farm.worker import DeviceWorker
from edgert.errors import EdgertError


#: how long connecting to a device waits for another farm process using it (then the
#: device is published offline, "busy", and connected again before its next job)
CONNECT_WAIT_S = 60.0
#: how long a claim refused after a reconnect is retried (our own old session may still
#: hold it until the server notices it is gone) before the agent stops
RECLAIM_S = 60.0


@dataclass
class AgentOptions:
    heartbeat_s: float = 2.0
    stale_s: float = field(default_factory=stale_after)
    lock_wait_s: float = 3600.0
    retries: int = 2
    probe_engines: bool = True


class DeviceSlot:
    """One device this agent serves: its link, and one job at a time."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.key = device_key(spec)
        self.worker: Optional[DeviceWorker] = None
        self.error: Optional[str] = None
        self.mutex = threading.Lock()

    @property
    def online(self) -> bool:
        return self.worker is not None and self.worker.info is not None and not self.error


class Agent:
    def __init__(self, store_url: str, inventory: Inventory, devices: Optional[List[str]],
                 agent_id: Optional[str] = None, options: Optional[AgentOptions] = None,
                 log: Optional[TextIO] = None) -> None:
        self.url = store_url
        self.options = options or AgentOptions()
        self.agent_id = agent_id or f"{platform.node()}-{os.getpid()}"
        self.slots: Dict[str, DeviceSlot] = {s.name: DeviceSlot(s)
                                             for s in inventory.select(devices)}
        self.log_stream = log or sys.stderr
        self._stop = threading.Event()
        self._chores: "queue.Queue" = queue.Queue()
        self._worker_task: Optional[asyncio.Task] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def log(self, text: str) -> None:
        print(f"[agent {self.agent_id}] {text}", file=self.log_stream, flush=True)

    # -- start -------------------------------------------------------------------------------
    def start(self) -> "Agent":
        """Claim, connect and publish the devices; raise ClaimRefused if one is taken."""
        from device_farm.pg_locks import PgLocks
        from device_farm.team.held import HeldJobs

        q.ensure_schema(self.url)
        self._held = HeldJobs()
        self.store = ResultStore(self.url)
        self._beats = ResultStore(self.url, reconnect_s=self.options.heartbeat_s)
        self.claims = Claims(self.url, {n: s.key for n, s in self.slots.items()})
        self.claims.claim(lambda name, key: holder_text(self.store, name, key))
        self.locks = PgLocks(self.url)
        self.runner = JobRunner(self.store, FarmOptions(retries=self.options.retries,
                                                        lock_wait_s=self.options.lock_wait_s),
                                self._emit, lambda job, status: None, agent=self.agent_id)
        self.store.register_agent(self.agent_id, platform.node(), os.getpid(),
                                  getpass.getuser(), sorted(self.slots), _version())
        threads = [threading.Thread(target=self._connect, args=(s,), daemon=True)
                   for s in self.slots.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._beat = threading.Thread(target=self._heartbeats, name="agent-heartbeat",
                                      daemon=True)
        self._beat.start()
        self._chores_thread = threading.Thread(target=self._do_chores, name="agent-chores",
                                               daemon=True)
        self._chores_thread.start()
        return self

    def _connect(self, slot: DeviceSlot) -> None:
        """Reach and probe a device (under its lease) and publish what it is."""
        slot.error = None
        try:
            if slot.worker is None:
                slot.worker = DeviceWorker(slot.spec)
            with self._lease(slot, "connect", None, CONNECT_WAIT_S):
                slot.worker.connect(self.options.probe_engines)
        except Exception as exc:  # noqa: BLE001 - a device's surprise is its state, not a crash
            slot.error = str(exc) if isinstance(exc, EdgertError) else \
                f"{type(exc).__name__}: {exc}"
        info = slot.worker.info.to_dict() if slot.worker and slot.worker.info else None
        self._publish(slot, info_json=_json(info), online=slot.online, error=slot.error)
        self.log(f"{slot.spec.name}: " + ("online" if slot.online else f"offline: {slot.error}"))

    def _publish(self, slot: DeviceSlot, **values: object) -> None:
        self.store.set_device_state(slot.spec.name, device_key=slot.key, agent_id=self.agent_id,
                                    transport=slot.spec.transport,
                                    spec_json=_json(slot.spec.public_dict()), **values)

    def _lease(self, slot: DeviceSlot, what: str, run_id: Optional[str],
               wait_s: Optional[float] = None):
        holder = {"pid": os.getpid(), "host": platform.node(), "agent": self.agent_id,
                  "run_id": run_id, "device": slot.spec.name, "job": what, "since": now_iso()}
        return self.locks.acquire(slot.key, holder,
                                  self.options.lock_wait_s if wait_s is None else wait_s,
                                  self._stop)

    # -- heartbeats and the janitor ----------------------------------------------------------
    def _heartbeats(self) -> None:
        """Every ``heartbeat_s``: the claims renewed, the agent's row touched, and now
        and then the janitor's sweep. Through a store of its own that waits out a broken
        connection for one heartbeat only (the jobs' store waits ``RECONNECT_S``): this
        loop is the retry, and a server that is away must be logged as away at the next
        beat, not after the jobs' two minutes (a crash between the claims' check and the
        heartbeat's write went unsaid that long)."""
        app = q.make_app(self.url, pool_timeout_s=max(1.0, self.options.heartbeat_s))
        beats = self._beats
        janitor = JanitorOptions(self.options.stale_s)
        down = False
        next_sweep = 0.0
        refused_since: Optional[float] = None
        with app.open():
            while not self._stop.wait(self.options.heartbeat_s):
                try:
                    if not self.claims.renew(lambda n, k: holder_text(beats, n, k)):
                        raise StoreUnavailable("the claims' connection is down")
                    beats.agent_heartbeat(self.agent_id)
                    if time.monotonic() >= next_sweep:   # a few times per stale period
                        next_sweep = time.monotonic() + janitor.stale_s / 4
                        for line in sweep(beats, app, janitor, self._held):
                            self.log(f"janitor: {line}")
                    if down:
                        self.log("the database is back")
                    down, refused_since = False, None
                except ClaimRefused as exc:
                    refused_since = refused_since or time.monotonic()
                    if time.monotonic() - refused_since > RECLAIM_S:
                        self.log(f"stopping: {exc}")
                        self.stop()
                except Exception as exc:  # noqa: BLE001 - a database away is waited out
                    if not down:
                        self.log(f"the database is unreachable, retrying: "
                                 f"{str(exc).splitlines()[0] if str(exc) else exc!r}")
                    down = True

    # -- jobs ----------------------------------------------------------------------------------
    def _emit(self, kind: str, device: str, **fields: object) -> None:
        slot = self.slots.get(device)
        if slot is None:
            return
        if kind == "job_start":
            self.log(f"{device}: running {fields.get('job')} (run {fields.get('run_id')})")
            self._chore(self._publish, slot, busy_run_id=fields.get("run_id"),
                        busy_job_key=fields.get("key"), busy_job=fields.get("job"),
                        busy_since=now_iso())
        elif kind in ("job_done", "job_failed", "job_not_run"):
            self.log(f"{device}: {kind.split('_', 1)[1]} {fields.get('job')}"
                     + (f": {fields['error']}" if fields.get("error") else ""))
            extra = {"throttled": bool(fields.get("throttled"))} if kind == "job_done" else {}
            self._chore(self._publish, slot, busy_run_id=None, busy_job_key=None,
                        busy_job=None, busy_since=None, **extra)

    def _chore(self, fn, *args, **kwargs) -> None:
        """Bookkeeping that must not delay the next job (the device's published state,
        the run's status): done in order by one thread."""
        self._chores.put((fn, args, kwargs))

    def _do_chores(self) -> None:
        while True:
            item = self._chores.get()
            if item is None:
                return
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - state is a courtesy: no job fails on it
                self.log(f"could not update the team's view: {exc}")

    def run_job(self, context, run_id: str, job_key: str) -> str:
        """The queue's task: run one planned job on its device (in a worker thread)."""
        from device_farm.jobs import Job

        plan = self.store.planned_job(run_id, job_key)
        if plan is None:
            return "no such job"
        job = Job.from_dict(plan)
        slot = self.slots.get(job.device)
        if slot is None:   # not ours: a queue mix-up must not lose the job
            raise DeviceError(f"agent {self.agent_id} does not serve device {job.device}")
        with slot.mutex:
            if self.store.has_result(run_id, job_key):
                return "already recorded"
            try:
                outcome = self._run_locked(slot, job, run_id)
            except Exception as exc:  # noqa: BLE001 - the farm's own trouble: retried
                last = context.job.attempts + 1 >= q.TASK_RETRIES
                self.log(f"{job.device}: could not run {job.label} ({exc})"
                         + ("; recording it as failed" if last else "; the queue retries it"))
                if last:
                    self.runner.record(run_id, job, slot.spec, None, "error",
                                       f"the agent could not run the job: {exc}", 0)
                    return "failed"
                raise
        self._chore(settle_run, self.store, run_id)
        return outcome

    def _run_locked(self, slot: DeviceSlot, job, run_id: str) -> str:
        try:
            job.model.path = fetch_model(self.store, job.model)
        except EdgertError as exc:
            self.runner.record(run_id, job, slot.spec, None, "error", str(exc), 0)
            return "model missing"
        if not slot.online:
            self._connect(slot)
            if not slot.online:
                self.runner.record(run_id, job, slot.spec, None, "not_run",
                                   f"not run: device unavailable: {slot.error}", 0)
                return "device unavailable"
        assert slot.worker is not None
        try:
            with self._lease(slot, job.label, run_id) as lease:
                dropped = self.runner.run(slot.worker, slot.spec, job, run_id, lease.waited_s)
        except DeviceBusy as exc:
            self.runner.record(run_id, job, slot.spec, slot.worker.info, "not_run",
                               f"not run: {exc}", 0)
            return "device busy"
        if dropped:
            slot.error = dropped
            self._publish(slot, online=False, error=dropped)
        return "done"

    # -- serving -------------------------------------------------------------------------------
    def serve(self) -> None:
        """Take jobs until stopped (SIGINT/SIGTERM or ``stop()``); reconnect to the queue
        whenever it is lost."""
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._loop.add_signal_handler(sig, self.stop)
            except (RuntimeError, ValueError):   # not the main thread
                pass
        queues = [q.queue_name(n) for n in self.slots]
        self.log(f"serving {', '.join(sorted(self.slots))} from {self.store.name}")
        while not self._stop.is_set():
            app = q.make_app(self.url, self.run_job, max_size=len(self.slots) + 3,
                             held=self._held, stopping=self._stop.is_set)
            try:
                async with app.open_async():
                    self._worker_task = asyncio.ensure_future(app.run_worker_async(
                        queues=queues, concurrency=len(self.slots), name=self.agent_id,
                        wait=True, install_signal_handlers=False, listen_notify=True,
                        fetch_job_polling_interval=1.0,
                        update_heartbeat_interval=self.options.heartbeat_s,
                        stalled_worker_timeout=self.options.stale_s))
                    await self._worker_task
            except asyncio.CancelledError:
                break
            except Exception as exc:  # noqa: BLE001 - the queue's connection was lost
                self.log(f"queue connection lost ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); reconnecting")
                await asyncio.sleep(1.0)
        self._close()

    def stop(self) -> None:
        """Stop taking jobs; a job that runs finishes first."""
        self._stop.set()
        loop, task = self._loop, self._worker_task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    def _close(self) -> None:
        self._chores.put(None)
        self._chores_thread.join(30)
        try:
            self.store.agent_heartbeat(self.agent_id, status="stopped")
            for slot in self.slots.values():
                self._publish(slot, online=False, error="its agent stopped",
                              busy_run_id=None, busy_job_key=None, busy_job=None)
        except EdgertError:
            pass
        for slot in self.slots.values():
            if slot.worker is not None:
                slot.worker.close()
        self.claims.close()
        self.locks.close()
        self.store.close()
        self._beats.close()
        self.log("stopped")


def _json(value) -> Optional[str]:
    import json

    return None if value is None else json.dumps(value)


def _version() -> str:
    import edgert

    return edgert.__version__
