"""Nothing lost, nothing left waiting: what every agent (and ``farm wait``) does
between jobs, under one advisory lock so two janitors never act twice.

1. **Jobs of dead agents.** A queue job whose worker stopped sending heartbeats
   for ``stale_s`` is stalled (its agent died: ``kill -9``, a crash, a machine
   gone). Its device was released when the agent's session ended (advisory
   locks); the job is queued again until it has been tried ``max_attempts``
   times (the run's, chosen by its submitter), then recorded as failed. A stalled job that already
   has its row (the agent died after writing it) is just closed.
   A job left ``doing`` for a worker that is alive but no longer runs it (its end
   lost in a database outage: ``held.py``) is settled the same way by its own
   agent's janitor, once it has been ``doing`` for ``stale_s``.
2. **Devices no agent holds.** A run's jobs for a device no live agent serves
   wait ``agent_wait_s`` (the submitter's choice); then they are recorded as not
   run, saying so, and cancelled in the queue. A run never waits forever.
3. **Runs that ended** get their status and summary (``settle_run``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional

from device_farm.store import ResultStore, now_iso
from device_farm.team.queue import TASK, device_of_queue
from edgert.errors import EdgertError

_JANITOR_LOCK = 0x6564_0011
STALE_ENV = "EDGERT_FARM_STALE_S"


def stale_after() -> float:
    """Seconds without a heartbeat after which an agent counts as dead (device state,
    stalled jobs): $EDGERT_FARM_STALE_S, default 15 (agents beat every 2 s)."""
    try:
        return float(os.environ.get(STALE_ENV) or 15.0)
    except ValueError:
        raise EdgertError(f"${STALE_ENV} must be a number of seconds") from None


@dataclass
class JanitorOptions:
    stale_s: float = field(default_factory=stale_after)
    max_attempts: int = 2


def live_devices(store: ResultStore,
                 stale_s: Optional[float] = None) -> Dict[str, Dict[str, object]]:
    """Devices a live agent serves now: name -> device state."""
    stale_s = stale_after() if stale_s is None else stale_s
    return {str(r["name"]): r for r in store.device_states()
            if isinstance(r["agent_age_s"], float) and r["agent_age_s"] < stale_s
            and r.get("agent_status") == "running"}


def settle_run(store: ResultStore, run_id: str) -> bool:
    """Give a queued run whose every job ended its status and summary; True if it ended."""
    meta = store.run(run_id)
    if not meta or meta.get("mode") != "queue":
        return False
    if str(meta["status"]).startswith("done"):
        return True
    counts = store.job_counts(run_id)      # cheap: called after every job
    if counts["ended"] < counts["planned"]:
        if meta["status"] == "queued" and counts["ended"]:
            store.set_run_status(run_id, "running")
        return False
    planned = store.planned_jobs(run_id)
    rows = store.results(run_id)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "not_run")}
    summary = {"run_id": run_id, "planned": len(planned), "ok": counts["ok"],
               "failed": counts["error"], "not_run": counts["not_run"], "skipped": 0,
               "wall_s": round(_age_s(str(meta["created_at"])), 3), "interrupted": False}
    store.set_run_status(run_id, "done" if counts["ok"] == len(planned) else
                         "done-with-errors", summary)
    return True


def _age_s(iso: str) -> float:
    t = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return time.time() - t.timestamp()


def record_without_agent(store: ResultStore, run_id: str, job_key: str, status: str,
                         error: str) -> None:
    """A row for a job no agent could write one for (same columns as any row)."""
    from device_farm.jobs import Job
    from device_farm.worker import base_row

    plan = store.planned_job(run_id, job_key)
    if plan is None or job_key in store.ended_keys(run_id):
        return
    job = Job.from_dict(plan)
    spec = _PlannedDevice(job.device)
    row = base_row(run_id, job, spec, None)  # type: ignore[arg-type]
    row.update(status=status, error=error, attempts=0, finished_at=now_iso())
    store.add_result(row)


class _PlannedDevice:
    """The little ``base_row`` needs of a device no agent described."""

    def __init__(self, name: str) -> None:
        self.name, self.transport, self.cpu_mask = name, None, None

    def public_dict(self) -> Dict[str, object]:
        return {"name": self.name}


def sweep(store: ResultStore, app, options: JanitorOptions, held=None) -> List[str]:
    """One round (see the module's text); returns what it did, one line per action.
    An agent passes the jobs its workers hold (``held.HeldJobs``): a job left
    ``doing`` for one of its workers that it does not hold is settled too."""
    import psycopg
    from procrastinate import sql

    from device_farm.store import location as loc

    done: List[str] = []
    # a bounded connect: the agent's heartbeat loop runs the sweep, and an unreachable
    # host (packets dropped, not refused) must not stall it for the OS's TCP timeout
    with psycopg.connect(loc.conninfo(store.path), autocommit=True, connect_timeout=10) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_JANITOR_LOCK,)).fetchone()
        if not (got and got[0]):
            return done   # another janitor is at it
        sync = app.connector.get_sync_connector()
        for job in sync.execute_query_all(
                query=sql.queries["select_stalled_jobs_by_heartbeat"],
                seconds_since_heartbeat=options.stale_s, queue=None, task_name=TASK):
            done.append(_stalled(store, sync, job, options))
        if held is not None:
            for job in _unheld(conn, held, options.stale_s):
                done.append(_stalled(store, sync, job, options, _LOST))
        done += _without_agent(store, conn, sync, options)
        for (run_id,) in conn.execute("SELECT run_id FROM runs WHERE mode = 'queue' AND "
                                      "status NOT LIKE %s", ("done%",)).fetchall():
            settle_run(store, run_id)
    return done


@dataclass(frozen=True)
class _Why:
    """How a settled job's lines and row name what happened to it."""
    closed: str
    retried: str
    failed: str
    row: str


_DIED = _Why("its agent died after recording it; closed",
             "its agent died during the job; queued again",
             "its agent died during the last try; recorded as failed",
             "the agent running this job on {device} stopped (no heartbeat for {stale:g} s)")
_LOST = _Why("the queue lost its end (a database outage) after it was recorded; closed",
             "the queue lost it (a database outage) during the job; queued again",
             "the queue lost it (a database outage) during the last try; recorded as failed",
             "the agent of {device} lost this job in a database outage")


def _unheld(conn, held, stale_s: float) -> List[Dict[str, object]]:
    """Jobs ``doing`` for one of the agent's workers, started over ``stale_s`` ago, that
    the agent does not hold (their end was never written, or lost with the server's
    last commits). Only this agent serves its devices (claims), so nobody runs them."""
    jobs, workers = held.snapshot()
    if not workers:
        return []
    rows = conn.execute(
        "SELECT j.id, j.args, j.attempts, j.queue_name FROM procrastinate_jobs j "
        "WHERE j.task_name = %s AND j.status = 'doing' AND j.worker_id = ANY(%s::bigint[]) "
        "AND NOT (j.id = ANY(%s::bigint[])) AND (SELECT max(e.at) FROM procrastinate_events e "
        "WHERE e.job_id = j.id AND e.type = 'started') < now() - make_interval(secs => %s)",
        (TASK, sorted(workers), sorted(jobs), stale_s)).fetchall()
    return [{"id": i, "args": a, "attempts": n, "queue_name": q} for i, a, n, q in rows]


def _stalled(store: ResultStore, sync, job, options: JanitorOptions,
             why: _Why = _DIED) -> str:
    from procrastinate import sql, utils

    args = job["args"]
    run_id, key = args["run_id"], args["job_key"]
    tries = int(job["attempts"]) + 1
    meta = store.run(run_id) or {}
    limit = int(json.loads(str(meta.get("options_json") or "{}")).get(
        "max_attempts", options.max_attempts))
    if key in store.ended_keys(run_id):
        sync.execute_query(query=sql.queries["finish_job"], job_id=job["id"],
                           status="succeeded", delete_job=False)
        return f"{run_id}/{key}: {why.closed}"
    if tries < limit:
        sync.execute_query(query=sql.queries["retry_job"], job_id=job["id"],
                           retry_at=utils.utcnow(), new_priority=None, new_queue_name=None,
                           new_lock=None)
        return f"{run_id}/{key}: {why.retried} (try {tries + 1})"
    what = why.row.format(device=device_of_queue(job["queue_name"]), stale=options.stale_s)
    record_without_agent(store, run_id, key, "error",
                         f"{what} during try {tries} of {limit}; not retried again")
    sync.execute_query(query=sql.queries["finish_job"], job_id=job["id"], status="failed",
                       delete_job=False)
    return f"{run_id}/{key}: {why.failed}"


def _without_agent(store: ResultStore, conn, sync, options: JanitorOptions) -> List[str]:
    from procrastinate import sql

    live = live_devices(store, options.stale_s)
    out: List[str] = []
    rows = conn.execute(
        "SELECT j.id, j.queue_name, j.args->>'run_id', j.args->>'job_key', r.options_json, "
        "r.created_at FROM procrastinate_jobs j JOIN runs r ON r.run_id = j.args->>'run_id' "
        "WHERE j.task_name = %s AND j.status = 'todo'", (TASK,)).fetchall()
    for job_id, queue, run_id, key, options_json, created in rows:
        device = device_of_queue(queue)
        wait_s = float(json.loads(options_json or "{}").get("agent_wait_s", 600.0))
        if device in live or _age_s(created) < wait_s:
            continue
        record_without_agent(store, run_id, key, "not_run",
                             f"not run: no agent served device {device} for {wait_s:g} s "
                             "after the run was submitted")
        sync.execute_query(query=sql.queries["cancel_job"], job_id=job_id, abort=False,
                           delete_job=False)
        out.append(f"{run_id}/{key}: no agent for {device}; recorded as not run")
    return out
