"""The results store: every run, its plan and every job's outcome, with
everything needed to repeat a row; in one SQLite file (the embedded default:
nothing to set up, one file to copy off a lab machine) or in PostgreSQL (the
team farm: one server every agent, submitter and dashboard sees). The same
tables and the same code for both (SQLAlchemy Core; ``schema.py``).

Each result is committed on its own, so a killed run loses at most the job that
was running. Rows are never updated or deleted: a job redone on resume adds a
row, and readers take the latest row per job (an ``ok`` row first).

A PostgreSQL store survives a server restart: a call whose connection broke is
retried on a new one for up to ``reconnect_s`` seconds (the pool checks each
connection before use), so agents ride out a restart without losing a row.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Iterable, List, Optional, Set

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from device_farm.store.base import (
    RECONNECT_S, StoreUnavailable, first_line, now_iso, reconnecting)
from device_farm.store import location as loc
from device_farm.store import schema as t
from device_farm.store.migrations import migrate
from device_farm.store.team_tables import TeamTables
from edgert.errors import EdgertError

SCHEMA_VERSION = t.SCHEMA_VERSION
RESULT_COLUMNS = t.RESULT_COLUMNS
#: result statuses: ``ok``; ``error`` (the job ran and failed); ``not_run`` (it never
#: started: its device was unavailable or dropped, or the run was interrupted)
STATUSES = ("ok", "error", "not_run")


#: how long opening a SQLite store waits for another process that holds it (creating or
#: upgrading it, or writing)
OPEN_WAIT_S = 30.0


def _locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc) or "database is busy" in str(exc)


def _wal(conn) -> None:
    """Put the file in WAL mode, waiting while another process holds it: the switch needs
    the file to itself for a moment, and SQLite answers a busy switch by keeping the old
    mode (or by "database is locked", without its busy handler). Two `farm bench` started
    at once on a new file could leave one in rollback mode, where it failed at once."""
    import sqlite3

    deadline = time.monotonic() + OPEN_WAIT_S
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
        if time.monotonic() > deadline:
            return              # the first statement that needs the lock will say so
        time.sleep(0.05)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": OPEN_WAIT_S})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None   # we say BEGIN ourselves (below)
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(OPEN_WAIT_S * 1000)}")
        _wal(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # writers take the write lock at BEGIN (two writers never deadlock on an upgrade);
        # readers do not wait for it (WAL)
        conn.exec_driver_sql("BEGIN" if conn.info.pop("read_only", False) else "BEGIN IMMEDIATE")

    return engine


class ResultStore(TeamTables):
    """Thread-safe access to one results database (a path or a postgresql:// URL)."""

    def __init__(self, path: str, reconnect_s: float = RECONNECT_S) -> None:
        self.path = path
        self.name = loc.display(path)
        self.is_postgres = loc.is_postgres(path)
        self.reconnect_s = reconnect_s
        url = loc.sqlalchemy_url(path)
        if not self.is_postgres:
            os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///"):])), exist_ok=True)
        self._engine = (create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)
                        if self.is_postgres else _sqlite_engine(url))
        try:
            self.upgraded_from = self._open()
        except OperationalError as exc:
            self._engine.dispose()
            if self.is_postgres:
                raise StoreUnavailable(f"{self.name}: cannot open the store: "
                                       f"{first_line(exc)}") from None
            if _locked(exc):
                raise StoreUnavailable(f"{path}: another process holds the database for "
                                       f"over {OPEN_WAIT_S:g} s ({first_line(exc)})") from None
            raise EdgertError(f"{path}: not a farm results database ({first_line(exc)})") \
                from None
        except DBAPIError as exc:
            self._engine.dispose()
            raise EdgertError(f"{path}: not a farm results database ({first_line(exc)})") \
                from None
        except BaseException:
            self._engine.dispose()
            raise

    def _open(self) -> int:
        """Create or upgrade the schema; a SQLite file another process is creating or
        writing is waited for (its busy timeout, then again until ``OPEN_WAIT_S``): it
        used to fail as "not a farm results database (database is locked)"."""
        deadline = time.monotonic() + OPEN_WAIT_S
        while True:
            try:
                with self._engine.begin() as conn:
                    return migrate(conn, self.name)
            except OperationalError as exc:
                if self.is_postgres or not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def schema_version(self) -> int:
        with self._reader() as conn:
            return int(conn.execute(select(t.meta.c.value).where(
                t.meta.c.key == "schema_version")).scalar_one())

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _reader(self) -> Connection:
        conn = self._engine.connect()
        if not self.is_postgres:
            conn.info["read_only"] = True
        return conn

    def _rows(self, query) -> List[Dict[str, object]]:
        with self._reader() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- runs ------------------------------------------------------------------------------
    @reconnecting
    def start_run(self, run_id: str, host: str, version: str, argv: List[str],
                  options: Dict[str, object], jobs: List[Dict[str, object]],
                  mode: str = "local", submitted_by: Optional[str] = None) -> None:
        """Record a new run and its plan in one transaction."""
        stamp = now_iso()
        with self._engine.begin() as conn:
            conn.execute(t.runs.insert().values(
                run_id=run_id, created_at=stamp, updated_at=stamp,
                status="queued" if mode == "queue" else "running", host=host,
                edgert_version=version, argv=json.dumps(argv), options_json=json.dumps(options),
                mode=mode, submitted_by=submitted_by))
            if jobs:
                conn.execute(t.jobs.insert(), [
                    {"run_id": run_id, "job_key": j["key"], "seq": i, "device": j["device"],
                     "job_json": json.dumps(j)} for i, j in enumerate(jobs)])

    @reconnecting
    def set_run_status(self, run_id: str, status: str,
                       summary: Optional[Dict[str, object]] = None) -> None:
        values: Dict[str, object] = {"status": status, "updated_at": now_iso()}
        if summary is not None:
            values["summary_json"] = json.dumps(summary)
        with self._engine.begin() as conn:
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))

    @reconnecting
    def run(self, run_id: str) -> Optional[Dict[str, object]]:
        rows = self._rows(select(t.runs).where(t.runs.c.run_id == run_id))
        return rows[0] if rows else None

    @reconnecting
    def runs(self) -> List[Dict[str, object]]:
        return self._rows(select(t.runs).order_by(t.runs.c.created_at, t.runs.c.run_id))

    @reconnecting
    def latest_run_id(self) -> Optional[str]:
        rows = self._rows(select(t.runs.c.run_id).order_by(t.runs.c.created_at.desc(),
                                                           t.runs.c.run_id.desc()).limit(1))
        return str(rows[0]["run_id"]) if rows else None

    @reconnecting
    def planned_jobs(self, run_id: str) -> List[Dict[str, object]]:
        return [json.loads(str(r["job_json"])) for r in self._rows(
            select(t.jobs.c.job_json).where(t.jobs.c.run_id == run_id).order_by(t.jobs.c.seq))]

    @reconnecting
    def planned_job(self, run_id: str, job_key: str) -> Optional[Dict[str, object]]:
        rows = self._rows(select(t.jobs.c.job_json).where(
            (t.jobs.c.run_id == run_id) & (t.jobs.c.job_key == job_key)))
        return json.loads(str(rows[0]["job_json"])) if rows else None

    # -- devices ---------------------------------------------------------------------------
    @reconnecting
    def save_device(self, run_id: str, device: str, status: str, spec: Dict[str, object],
                    info: Optional[Dict[str, object]], error: Optional[str] = None) -> None:
        values = dict(run_id=run_id, device=device, status=status, spec_json=json.dumps(spec),
                      info_json=json.dumps(info) if info is not None else None, error=error,
                      probed_at=now_iso())
        with self._engine.begin() as conn:
            conn.execute(t.devices.delete().where((t.devices.c.run_id == run_id)
                                                  & (t.devices.c.device == device)))
            conn.execute(t.devices.insert().values(**values))

    @reconnecting
    def devices(self, run_id: str) -> List[Dict[str, object]]:
        return self._rows(select(t.devices).where(t.devices.c.run_id == run_id)
                          .order_by(t.devices.c.device))

    # -- results ---------------------------------------------------------------------------
    @reconnecting
    def add_result(self, row: Dict[str, object]) -> int:
        unknown = set(row) - set(RESULT_COLUMNS)
        if unknown:
            raise ValueError(f"unknown result column(s): {sorted(unknown)}")
        with self._engine.begin() as conn:
            res = conn.execute(t.results.insert().values(**row).returning(t.results.c.id))
            return int(res.scalar_one())

    @reconnecting
    def finished_keys(self, run_id: str) -> Set[str]:
        """Job keys of a run that have an ``ok`` row (a resume skips them)."""
        return {str(r["job_key"]) for r in self._rows(
            select(t.results.c.job_key).distinct().where(
                (t.results.c.run_id == run_id) & (t.results.c.status == "ok")))}

    @reconnecting
    def ended_keys(self, run_id: str) -> Set[str]:
        """Job keys of a run that have any row (ok, error or not run): the jobs that ended."""
        return {str(r["job_key"]) for r in self._rows(
            select(t.results.c.job_key).distinct().where(t.results.c.run_id == run_id))}

    @reconnecting
    def job_counts(self, run_id: str) -> Dict[str, int]:
        """``planned`` jobs of a run and how many ``ended`` (have any row), in SQL."""
        planned = select(func.count()).select_from(t.jobs).where(t.jobs.c.run_id == run_id)
        ended = select(func.count(t.results.c.job_key.distinct())).where(
            t.results.c.run_id == run_id)
        with self._reader() as conn:
            row = conn.execute(select(planned.scalar_subquery(),
                                      ended.scalar_subquery())).one()
        return {"planned": int(row[0]), "ended": int(row[1])}

    @reconnecting
    def has_result(self, run_id: str, job_key: str) -> bool:
        """Whether a job has any row (it ended: ok, failed or not run)."""
        return bool(self._rows(select(t.results.c.id).where(
            (t.results.c.run_id == run_id) & (t.results.c.job_key == job_key)).limit(1)))

    @reconnecting
    def results(self, run_id: Optional[str] = None,
                latest: bool = True) -> List[Dict[str, object]]:
        """Result rows (of one run, or all); ``latest``: one row per job, an ok row first."""
        query = select(t.results).order_by(t.results.c.id)
        if run_id:
            query = query.where(t.results.c.run_id == run_id)
        return pick_latest(self._rows(query)) if latest else self._rows(query)

    @reconnecting
    def result(self, result_id: int) -> Optional[Dict[str, object]]:
        rows = self._rows(select(t.results).where(t.results.c.id == result_id))
        return rows[0] if rows else None

    @reconnecting
    def group_results(self, model_group: str) -> List[Dict[str, object]]:
        """The latest row per job of every run of one model (its history)."""
        return pick_latest(self._rows(select(t.results).where(
            t.results.c.model_group == model_group).order_by(t.results.c.id)))

    @reconnecting
    def run_counts(self) -> Dict[str, Dict[str, int]]:
        """Per run: planned jobs and the latest status of each job that ended (in SQL,
        so a list of every run stays fast over many results)."""
        latest = text(
            "SELECT run_id, status, count(*) AS n FROM ("
            " SELECT run_id, status, row_number() OVER (PARTITION BY run_id, job_key"
            "  ORDER BY CASE WHEN status='ok' THEN 1 ELSE 0 END DESC, id DESC) AS rn"
            " FROM results) AS ranked WHERE rn = 1 GROUP BY run_id, status")
        planned = select(t.jobs.c.run_id, func.count().label("n")).group_by(t.jobs.c.run_id)
        out: Dict[str, Dict[str, int]] = {}
        with self._reader() as conn:
            for run_id, n in conn.execute(planned):
                out.setdefault(run_id, {})["planned"] = int(n)
            for run_id, status, n in conn.execute(latest):
                out.setdefault(run_id, {})[status] = int(n)
        return out

    @reconnecting
    def model_groups(self) -> List[Dict[str, object]]:
        """Each model group with its number of ok results and runs."""
        q = (select(t.results.c.model_group, func.count().label("results"),
                    func.count(t.results.c.run_id.distinct()).label("runs"))
             .where(t.results.c.status == "ok").group_by(t.results.c.model_group)
             .order_by(t.results.c.model_group))
        return self._rows(q)


def pick_latest(rows: Iterable[Dict[str, object]]) -> List[Dict[str, object]]:
    """One row per (run, job): its ok row if it has one, else its latest."""
    best: Dict[tuple, Dict[str, object]] = {}
    for r in rows:
        k = (r["run_id"], r["job_key"])
        if k not in best or r["status"] == "ok" or best[k]["status"] != "ok":
            best[k] = r
    return sorted(best.values(), key=lambda r: r["id"])  # type: ignore[arg-type, return-value]
