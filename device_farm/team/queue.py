"""The team farm's job queue: procrastinate on the store's own PostgreSQL.

Why procrastinate (docs/DEVICES.md says more): it keeps its queue in tables of
the PostgreSQL server the store already uses (one server to run, back up and
watch; no broker), takes jobs with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
wakes workers with LISTEN/NOTIFY, and has the three things a device farm needs
built in: queues (one per device, so an agent takes only jobs of the devices it
holds), ``lock`` (no two jobs with the same lock run at once: one job per device
across every agent, decided by the database) and worker heartbeats (a job whose
worker stopped beating is "stalled", for the janitor to retry or fail).

A queue job carries only ``run_id`` and ``job_key``: the job itself (model,
settings) is the run's plan in the store, the same ``Job`` the one-machine
scheduler runs.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

from device_farm.store import location as loc

TASK = "edgert_farm_job"
#: tries of a queue job whose agent could not run it (its store or lock unreachable)
TASK_RETRIES = 4
_SCHEMA_LOCK = 0x6564_0010


def queue_name(device: str) -> str:
    """A device's queue (and its lock: one job of a device runs at a time)."""
    return f"device:{device}"


def device_of_queue(queue: str) -> str:
    return queue.split(":", 1)[1]


def make_app(url: str, task: Optional[Callable[..., object]] = None, max_size: int = 4,
             held=None, stopping: Optional[Callable[[], bool]] = None,
             pool_timeout_s: float = 30.0):
    """A procrastinate App on the store's server; ``task(context, run_id, job_key)``
    is registered as the farm's job when given (an agent, which opens it async; others
    open it sync). An agent passes ``held`` (``held.HeldJobs``): its worker then records
    the jobs it holds and writes a job's end again while the database is away."""
    import procrastinate

    # procrastinate's pools check each connection before use (psycopg_pool's check)
    connector = procrastinate.PsycopgConnector(conninfo=loc.conninfo(url), min_size=1,
                                               max_size=max_size, timeout=pool_timeout_s)
    app = procrastinate.App(connector=connector)
    if held is not None:
        from device_farm.team.held import AgentJobManager

        app.job_manager = AgentJobManager(connector, held, stopping or (lambda: False))
    if task is not None:
        # the job's own failures are rows, never exceptions; what raises is the farm's
        # infrastructure (the database away for longer than the store waits): try again
        app.task(name=TASK, pass_context=True,
                 retry=procrastinate.RetryStrategy(max_attempts=TASK_RETRIES - 1,  # retries
                                                   wait=5))(task)
    return app


def ensure_schema(url: str) -> None:
    """Create the queue's tables on the server once (under an advisory lock, so two
    agents starting at once do not both try)."""
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(loc.conninfo(url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is None or row[0] is None:
                conn.execute(SchemaManager.get_schema())  # type: ignore[arg-type]
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


def defer_jobs(app, run_id: str, jobs: List) -> None:
    """Queue one procrastinate job per farm job, in one statement (one transaction)."""
    from procrastinate.jobs import Job as QueueJob

    app.job_manager.batch_defer_jobs([
        QueueJob(id=None, queue=queue_name(j.device), lock=queue_name(j.device),
                 queueing_lock=None, task_name=TASK,
                 task_kwargs={"run_id": run_id, "job_key": j.key}) for j in jobs])


def run_queue_state(conn, run_id: str) -> Dict[str, Dict[str, int]]:
    """Per device, the run's queue jobs by procrastinate status (todo, doing, ...)."""
    out: Dict[str, Dict[str, int]] = {}
    for queue, status, n in conn.execute(
            "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
            "WHERE task_name = %s AND args->>'run_id' = %s GROUP BY 1, 2", (TASK, run_id)):
        out.setdefault(device_of_queue(queue), {})[status] = int(n)
    return out
