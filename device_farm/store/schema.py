"""The results store's tables (SQLAlchemy Core), one definition for SQLite and
PostgreSQL: the schema at its current version (``SCHEMA_VERSION``). Older
stores are brought here by ``migrations.py``.

Tables of every store: ``meta`` (the schema version), ``runs`` (one per run),
``jobs`` (the plan of a run), ``devices`` (what each device was, per run),
``results`` (one row per finished, failed or not-run job attempt; never updated).
Tables the team farm uses (empty in a one-machine store): ``model_files`` (the
bytes of submitted models, by sha256, so an agent on another machine can fetch
them), ``agents`` (one row per agent process, its heartbeat),
``device_state`` (each device an agent holds: online, throttled, busy, by whom)
and ``device_locks`` (who holds a device's lock in PostgreSQL).
Times are ISO-8601 UTC text (``now_iso``), as they always were.
"""
from __future__ import annotations

from sqlalchemy import (
    Boolean, Column, Float, Index, Integer, LargeBinary, MetaData, Table, Text)

SCHEMA_VERSION = 3

metadata = MetaData()

meta = Table("meta", metadata, Column("key", Text, primary_key=True), Column("value", Text))

runs = Table(
    "runs", metadata,
    Column("run_id", Text, primary_key=True), Column("created_at", Text),
    Column("updated_at", Text), Column("status", Text), Column("host", Text),
    Column("edgert_version", Text), Column("argv", Text), Column("options_json", Text),
    Column("summary_json", Text),                                  # v2
    Column("mode", Text), Column("submitted_by", Text))             # v3: local | queue

jobs = Table(
    "jobs", metadata,
    Column("run_id", Text, primary_key=True), Column("job_key", Text, primary_key=True),
    Column("seq", Integer), Column("device", Text), Column("job_json", Text))

devices = Table(
    "devices", metadata,
    Column("run_id", Text, primary_key=True), Column("device", Text, primary_key=True),
    Column("status", Text), Column("spec_json", Text), Column("info_json", Text),
    Column("error", Text), Column("probed_at", Text))

_R = Float(precision=53)   # REAL in SQLite, double precision in PostgreSQL

results = Table(
    "results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Text, nullable=False), Column("job_key", Text, nullable=False),
    Column("device", Text, nullable=False), Column("transport", Text),
    Column("status", Text, nullable=False), Column("error", Text),
    Column("model_name", Text), Column("model_path", Text), Column("model_sha256", Text),
    Column("model_size", Integer), Column("format", Text), Column("precision", Text),
    Column("model_precision", Text), Column("engine", Text), Column("engine_version", Text),
    Column("runner", Text), Column("threads", Integer), Column("runs", Integer),
    Column("warmup", Integer), Column("cooldown_s", _R), Column("cpu_mask", Text),
    Column("settings_json", Text),
    *[Column(c, _R) for c in ("init_ms", "first_run_ms", "min_ms", "median_ms", "p90_ms",
                              "p99_ms", "mean_ms", "std_ms", "max_ms", "peak_rss_mb")],
    Column("latencies_json", Text), Column("extra_json", Text),
    Column("state_before_json", Text), Column("state_after_json", Text),
    Column("throttled", Integer), Column("warnings_json", Text), Column("device_json", Text),
    Column("attempts", Integer), Column("started_at", Text), Column("finished_at", Text),
    Column("duration_s", _R), Column("bench_s", _R),
    Column("variant_json", Text), Column("model_group", Text), Column("variant", Text),  # v2
    Column("lock_wait_s", _R),                                                          # v2
    Column("agent", Text))                                                              # v3
Index("results_run", results.c.run_id, results.c.job_key)
Index("results_group", results.c.model_group)                                           # v3

model_files = Table(
    "model_files", metadata,
    Column("sha256", Text, primary_key=True), Column("name", Text), Column("size", Integer),
    Column("content", LargeBinary), Column("created_at", Text))

agents = Table(
    "agents", metadata,
    Column("agent_id", Text, primary_key=True), Column("host", Text), Column("pid", Integer),
    Column("user_name", Text), Column("devices_json", Text), Column("started_at", Text),
    Column("heartbeat_at", Text), Column("heartbeat_epoch", _R), Column("status", Text),
    Column("edgert_version", Text))

device_state = Table(
    "device_state", metadata,
    Column("name", Text, primary_key=True), Column("device_key", Text),
    Column("agent_id", Text), Column("transport", Text), Column("spec_json", Text),
    Column("info_json", Text), Column("online", Boolean), Column("error", Text),
    Column("throttled", Boolean), Column("busy_run_id", Text), Column("busy_job_key", Text),
    Column("busy_job", Text), Column("busy_since", Text), Column("updated_at", Text),
    Column("updated_epoch", _R))

device_locks = Table(        # who holds a device's advisory lock (locks.PgLocks)
    "device_locks", metadata,
    Column("key", Text, primary_key=True), Column("holder_json", Text),
    Column("backend_pid", Integer))

#: result columns a caller may set (id is the store's)
RESULT_COLUMNS = tuple(c.name for c in results.columns if c.name != "id")
