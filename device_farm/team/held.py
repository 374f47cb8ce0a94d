"""Which queue jobs an agent's worker really holds, and their end written through an
outage.

procrastinate marks a job ``doing`` for a worker when it takes it and ``succeeded``
(or queued again) when the task returns. Two things can leave a job ``doing`` for a
worker that is alive and no longer runs it:

* the end could not be written: the database was away longer than the pool waits
  for a connection when the task returned (procrastinate logs nothing: the error
  dies with the job's asyncio task);
* the end was written and then lost: a crashed server (or a failover to a replica
  that lags) comes back without its last commits.

Such a job is never "stalled" (its worker beats), and its device's queue lock keeps
every later job of the device waiting forever. So the agent's job manager writes a
job's end again until the database takes it, and remembers which jobs it holds
(taken and not yet ended); the janitor settles a ``doing`` job of this agent's
workers that it does not hold (``janitor.py``).
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable, Iterable, Optional, Set, Tuple

import psycopg
from procrastinate import exceptions, jobs, manager

#: how long the end of a job is written again while the database is away (the store
#: waits as long for its own calls)
END_WAIT_S = 120.0
#: pause between two tries
END_RETRY_S = 1.0


class HeldJobs:
    """The ids of the queue jobs this agent's workers took and have not ended in the
    queue yet, and the ids of those workers (thread-safe: the worker's event loop
    writes, the heartbeat thread's janitor reads)."""

    def __init__(self) -> None:
        self._jobs: Set[int] = set()
        self._workers: Set[int] = set()
        self._lock = threading.Lock()

    def took(self, job_id: int) -> None:
        with self._lock:
            self._jobs.add(job_id)

    def ended(self, job_id: int) -> None:
        with self._lock:
            self._jobs.discard(job_id)

    def worker(self, worker_id: int) -> None:
        with self._lock:
            self._workers.add(worker_id)

    def snapshot(self) -> Tuple[Set[int], Set[int]]:
        """(held job ids, worker ids), copies."""
        with self._lock:
            return set(self._jobs), set(self._workers)


def connection_lost(exc: BaseException) -> bool:
    """A connector error that says the server was not reachable (not a refused statement,
    which trying again cannot fix)."""
    return isinstance(exc, exceptions.ConnectorException) and \
        isinstance(exc.__cause__, psycopg.OperationalError)


class AgentJobManager(manager.JobManager):
    """procrastinate's job manager, with what an agent's worker holds recorded and a
    job's end written again (``END_WAIT_S``, or until ``stopping()``) while the
    database is away."""

    def __init__(self, connector, held: HeldJobs, stopping: Callable[[], bool],
                 end_wait_s: float = END_WAIT_S) -> None:
        super().__init__(connector)
        self.held, self.stopping, self.end_wait_s = held, stopping, end_wait_s

    async def register_worker(self) -> int:
        worker_id = await super().register_worker()
        self.held.worker(worker_id)
        return worker_id

    async def fetch_job(self, queues: Optional[Iterable[str]],
                        worker_id: int) -> Optional[jobs.Job]:
        job = await super().fetch_job(queues, worker_id)
        if job is not None and job.id is not None:
            self.held.took(job.id)
        return job

    async def finish_job(self, job: jobs.Job, status: jobs.Status, delete_job: bool) -> None:
        await self._end(job, lambda: super(AgentJobManager, self).finish_job(
            job, status, delete_job))

    async def retry_job(self, job: jobs.Job, retry_at=None, priority=None, queue=None,
                        lock=None) -> None:
        await self._end(job, lambda: super(AgentJobManager, self).retry_job(
            job, retry_at=retry_at, priority=priority, queue=queue, lock=lock))

    async def _end(self, job: jobs.Job, write) -> None:
        """Write a job's end, again while the server is away; the job is no longer held
        either way (if it could not be written, the janitor settles it later)."""
        deadline = time.monotonic() + self.end_wait_s
        try:
            while True:
                try:
                    await write()
                    return
                except exceptions.ConnectorException as exc:
                    if not connection_lost(exc) or self.stopping() or \
                            time.monotonic() >= deadline:
                        raise
                await asyncio.sleep(END_RETRY_S)
        finally:
            if job.id is not None:
                self.held.ended(job.id)
