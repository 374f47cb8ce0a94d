"""The results store: one SQLite file that keeps every run, its plan and every
job's outcome, with everything needed to repeat a row.

Why SQLite: it is embedded (nothing to set up), one file to copy off a lab
machine, and each result is committed on its own, so a killed run loses at most
the job that was running. Rows are never updated or deleted: a job redone on
resume adds a row, and readers take the latest row per job.

Tables: ``runs`` (one per ``farm bench``), ``jobs`` (the plan of a run, so it can
be resumed), ``devices`` (what each device was, per run), ``results`` (one row
per finished, failed or not-run job attempt).

Schema versions (``meta.schema_version``), each a list of steps in
``MIGRATIONS``; opening a store brings it to the current version in one
transaction, so a store written by an older edgert keeps every row readable:

1. the first schema.
2. results: ``variant_json`` (what the file is: format, precision and where the
   precision came from, pruned/sparse, the conversion report), ``model_group``
   and ``variant`` (its labels, for SQL), ``lock_wait_s``; runs: ``summary_json``
   (planned / ok / failed / not run). Rows of version 1 have no variant: readers
   derive one (``device_farm.variants.variant_of_row``).
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from typing import Dict, Iterable, List, Optional, Set

from edgert.errors import EdgertError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created_at TEXT, updated_at TEXT, status TEXT,
    host TEXT, edgert_version TEXT, argv TEXT, options_json TEXT);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT, job_key TEXT, seq INTEGER, device TEXT, job_json TEXT,
    PRIMARY KEY (run_id, job_key));
CREATE TABLE IF NOT EXISTS devices (
    run_id TEXT, device TEXT, status TEXT, spec_json TEXT, info_json TEXT, error TEXT,
    probed_at TEXT, PRIMARY KEY (run_id, device));
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, job_key TEXT NOT NULL, device TEXT NOT NULL, transport TEXT,
    status TEXT NOT NULL, error TEXT,
    model_name TEXT, model_path TEXT, model_sha256 TEXT, model_size INTEGER,
    format TEXT, precision TEXT, model_precision TEXT,
    engine TEXT, engine_version TEXT, runner TEXT,
    threads INTEGER, runs INTEGER, warmup INTEGER, cooldown_s REAL, cpu_mask TEXT,
    settings_json TEXT,
    init_ms REAL, first_run_ms REAL, min_ms REAL, median_ms REAL, p90_ms REAL, p99_ms REAL,
    mean_ms REAL, std_ms REAL, max_ms REAL, peak_rss_mb REAL, latencies_json TEXT,
    extra_json TEXT,
    state_before_json TEXT, state_after_json TEXT, throttled INTEGER, warnings_json TEXT,
    device_json TEXT, attempts INTEGER,
    started_at TEXT, finished_at TEXT, duration_s REAL, bench_s REAL);
CREATE INDEX IF NOT EXISTS results_run ON results (run_id, job_key);
"""

#: version -> the statements that bring a store of the version before to it
MIGRATIONS: Dict[int, List[str]] = {
    2: ["ALTER TABLE results ADD COLUMN variant_json TEXT",
        "ALTER TABLE results ADD COLUMN model_group TEXT",
        "ALTER TABLE results ADD COLUMN variant TEXT",
        "ALTER TABLE results ADD COLUMN lock_wait_s REAL",
        "ALTER TABLE runs ADD COLUMN summary_json TEXT"],
}

#: result statuses: ``ok``; ``error`` (the job ran and failed); ``not_run`` (it never
#: started: its device was unavailable or dropped, or the run was interrupted)
STATUSES = ("ok", "error", "not_run")

#: result columns a caller may set (id is the store's)
RESULT_COLUMNS = (
    "run_id", "job_key", "device", "transport", "status", "error", "model_name", "model_path",
    "model_sha256", "model_size", "format", "precision", "model_precision", "engine",
    "engine_version", "runner", "threads", "runs", "warmup", "cooldown_s", "cpu_mask",
    "settings_json", "init_ms", "first_run_ms", "min_ms", "median_ms", "p90_ms", "p99_ms",
    "mean_ms", "std_ms", "max_ms", "peak_rss_mb", "latencies_json", "extra_json",
    "state_before_json", "state_after_json", "throttled", "warnings_json", "device_json",
    "attempts", "started_at", "finished_at", "duration_s", "bench_s", "variant_json",
    "model_group", "variant", "lock_wait_s")


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class ResultStore:
    """Thread-safe access to one results database."""

    def __init__(self, path: str) -> None:
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30,
                                       isolation_level=None)
            self._db.row_factory = sqlite3.Row
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise EdgertError(f"{path}: not a farm results database ({exc})") from None

    def _migrate(self) -> None:
        """Create or upgrade the schema, in one transaction that holds the write lock
        (two processes opening an old store at once: the second finds it done)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = not db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                   "AND name='results'").fetchall()
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            if fresh:
                version = 1
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', '1')")
            else:
                row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else 1
            if version > SCHEMA_VERSION:
                raise EdgertError(f"{self.path}: results database of schema version {version}, "
                                  f"newer than this edgert's {SCHEMA_VERSION}; upgrade edgert")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v]:
                    db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        row = self._read("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0]["value"])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, params: Iterable[object]) -> None:
        with self._lock:      # autocommit: each statement is its own transaction
            self._db.execute(sql, tuple(params))

    def _read(self, sql: str, params: Iterable[object] = ()) -> List[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, run_id: str, host: str, version: str, argv: List[str],
                  options: Dict[str, object], jobs: List[Dict[str, object]]) -> None:
        """Record a new run and its plan in one transaction."""
        stamp = now_iso()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO runs (run_id, created_at, updated_at, status, "
                                 "host, edgert_version, argv, options_json) "
                                 "VALUES (?,?,?,?,?,?,?,?)",
                                 (run_id, stamp, stamp, "running", host, version,
                                  json.dumps(argv), json.dumps(options)))
                self._db.executemany("INSERT INTO jobs VALUES (?,?,?,?,?)",
                                     [(run_id, j["key"], i, j["device"], json.dumps(j))
                                      for i, j in enumerate(jobs)])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def set_run_status(self, run_id: str, status: str,
                       summary: Optional[Dict[str, object]] = None) -> None:
        if summary is None:
            self._write("UPDATE runs SET status=?, updated_at=? WHERE run_id=?",
                        (status, now_iso(), run_id))
        else:
            self._write("UPDATE runs SET status=?, updated_at=?, summary_json=? WHERE run_id=?",
                        (status, now_iso(), json.dumps(summary), run_id))

    def run(self, run_id: str) -> Optional[Dict[str, object]]:
        rows = self._read("SELECT * FROM runs WHERE run_id=?", (run_id,))
        return dict(rows[0]) if rows else None

    def runs(self) -> List[Dict[str, object]]:
        return [dict(r) for r in self._read("SELECT * FROM runs ORDER BY created_at")]

    def latest_run_id(self) -> Optional[str]:
        rows = self._read(
            "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1")
        return rows[0]["run_id"] if rows else None

    def planned_jobs(self, run_id: str) -> List[Dict[str, object]]:
        return [json.loads(r["job_json"]) for r in
                self._read("SELECT job_json FROM jobs WHERE run_id=? ORDER BY seq", (run_id,))]

    # -- devices ---------------------------------------------------------------------------
    def save_device(self, run_id: str, device: str, status: str, spec: Dict[str, object],
                    info: Optional[Dict[str, object]], error: Optional[str] = None) -> None:
        self._write("INSERT OR REPLACE INTO devices VALUES (?,?,?,?,?,?,?)",
                    (run_id, device, status, json.dumps(spec),
                     json.dumps(info) if info is not None else None, error, now_iso()))

    def devices(self, run_id: str) -> List[Dict[str, object]]:
        return [dict(r) for r in self._read("SELECT * FROM devices WHERE run_id=? ORDER BY device",
                                            (run_id,))]

    # -- results ---------------------------------------------------------------------------
    def add_result(self, row: Dict[str, object]) -> int:
        unknown = set(row) - set(RESULT_COLUMNS)
        if unknown:
            raise ValueError(f"unknown result column(s): {sorted(unknown)}")
        cols = [c for c in RESULT_COLUMNS if c in row]
        with self._lock:
            cur = self._db.execute(
                f"INSERT INTO results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                tuple(row[c] for c in cols))
            return int(cur.lastrowid)

    def finished_keys(self, run_id: str) -> Set[str]:
        """Job keys of a run that have an ``ok`` row (a resume skips them)."""
        return {r["job_key"] for r in self._read(
            "SELECT DISTINCT job_key FROM results WHERE run_id=? AND status='ok'", (run_id,))}

    def results(self, run_id: Optional[str] = None,
                latest: bool = True) -> List[Dict[str, object]]:
        """Result rows (of one run, or all); ``latest``: one row per job, an ok row first."""
        where, params = ("WHERE run_id=?", (run_id,)) if run_id else ("", ())
        rows = [dict(r) for r in self._read(f"SELECT * FROM results {where} ORDER BY id", params)]
        if not latest:
            return rows
        best: Dict[tuple, Dict[str, object]] = {}
        for r in rows:
            k = (r["run_id"], r["job_key"])
            if k not in best or r["status"] == "ok" or best[k]["status"] != "ok":
                best[k] = r
        return sorted(best.values(), key=lambda r: r["id"])
