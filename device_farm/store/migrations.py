"""Versioned migrations of the results store, the same steps for SQLite and
PostgreSQL, written as Alembic operations (Alembic emits each dialect's DDL).

The version lives in ``meta.schema_version`` (as it always did, so an older
edgert opening a newer store refuses it by name). Opening a store runs the
steps from its version to ``SCHEMA_VERSION`` in one transaction that holds the
database's write lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction
advisory lock, and DDL is transactional), so two processes opening an old
store at once are fine: the second finds it done.

1. the first schema (issue 7).
2. results: ``variant_json``, ``model_group``, ``variant``, ``lock_wait_s``;
   runs: ``summary_json`` (issue 15).
3. the team farm (issue 17): runs ``mode``/``submitted_by``, results ``agent``,
   an index on ``model_group`` (a model's history), and the tables
   ``model_files``, ``agents``, ``device_state``, ``device_locks``.
"""
from __future__ import annotations

from typing import Callable, Dict

from sqlalchemy import Column, Float, Text, inspect, text
from sqlalchemy.engine import Connection

from device_farm.store import schema
from edgert.errors import EdgertError

#: the tables of version 1, exactly as the first farm created them (SQLite)
_V1 = """
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
"""

_LOCK_ID = 0x6564_6731   # PostgreSQL: the advisory lock migrations hold ("edg1")


def _operations(conn: Connection):
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    return Operations(MigrationContext.configure(conn))


def _v2(conn: Connection) -> None:
    op = _operations(conn)
    for name, kind in (("variant_json", Text), ("model_group", Text), ("variant", Text),
                       ("lock_wait_s", Float(precision=53))):
        op.add_column("results", Column(name, kind))
    op.add_column("runs", Column("summary_json", Text))


def _v3(conn: Connection) -> None:
    op = _operations(conn)
    op.add_column("runs", Column("mode", Text))
    op.add_column("runs", Column("submitted_by", Text))
    op.add_column("results", Column("agent", Text))
    op.create_index("results_group", "results", ["model_group"])
    for table in (schema.model_files, schema.agents, schema.device_state,
                  schema.device_locks):
        table.create(conn, checkfirst=True)


#: version -> the step that brings a store of the version before to it
MIGRATIONS: Dict[int, Callable[[Connection], None]] = {2: _v2, 3: _v3}


def current_version(conn: Connection) -> int:
    """The store's version; 0 for an empty database."""
    names = set(inspect(conn).get_table_names())
    if "results" not in names:
        return 0
    if "meta" not in names:
        return 1
    row = conn.execute(text("SELECT value FROM meta WHERE key='schema_version'")).fetchone()
    return int(row[0]) if row else 1


def migrate(conn: Connection, where: str) -> int:
    """Create or upgrade the schema on ``conn`` (inside the caller's transaction, which
    holds the write lock); return the version it was at (0: created)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    version = current_version(conn)
    if version > schema.SCHEMA_VERSION:
        raise EdgertError(f"{where}: results database of schema version {version}, newer "
                          f"than this edgert's {schema.SCHEMA_VERSION}; upgrade edgert")
    if version == 0:
        schema.metadata.create_all(conn)
    else:
        if conn.dialect.name == "sqlite":
            for statement in filter(str.strip, _V1.split(";")):
                conn.exec_driver_sql(statement)
        for v in range(version + 1, schema.SCHEMA_VERSION + 1):
            MIGRATIONS[v](conn)
    if version != schema.SCHEMA_VERSION:
        conn.execute(schema.meta.delete().where(schema.meta.c.key == "schema_version"))
        conn.execute(schema.meta.insert().values(key="schema_version",
                                                 value=str(schema.SCHEMA_VERSION)))
    return version
