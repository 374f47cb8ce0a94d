"""Searches of ``edgert optimize`` kept in the farm's results store.

A search's state (``converters.optimize.state.SearchState``, a JSON object) is
saved after every batch into the table ``optimize_searches`` of the same store (a
SQLite file or a team's PostgreSQL database) that holds the farm runs which measured
it, so ``--resume SEARCH_ID`` continues it and ``--compare SEARCH_ID`` draws its front beside another one's.
The table is created on first use (its own ``CREATE TABLE IF NOT EXISTS``: the
farm's schema and migrations are untouched, and a store without searches reads as
before). Each save replaces the row of its search: the state already holds every
candidate measured, and each measurement points at its immutable farm row.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any, Dict, List, Optional

from sqlalchemy import text

from edgert.errors import EdgertError

_TABLE = """CREATE TABLE IF NOT EXISTS optimize_searches (
    search_id TEXT PRIMARY KEY, created_at TEXT, updated_at TEXT, status TEXT,
    model_name TEXT, target TEXT, device TEXT, goal TEXT, state_json TEXT)"""


def new_search_id() -> str:
    return time.strftime("optimize-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class FarmSearchLog:
    """One search's state in the farm store ``db`` (a log for ``converters.optimize``): a
    SQLite path or a team store's ``postgresql://`` URL, through the store's own engine."""

    def __init__(self, db: str, search_id: Optional[str] = None) -> None:
        from device_farm.store import ResultStore

        self._store = ResultStore(db)      # creates or migrates the farm's own tables first
        self.db = db
        self.search_id = search_id or new_search_id()
        self.description = f"farm store {self._store.name}"
        with self._engine().begin() as conn:
            conn.execute(text(_TABLE))

    def _engine(self) -> Any:
        return self._store._engine        # the store's engine: its pool, its SQLite pragmas

    def close(self) -> None:
        self._store.close()

    def load(self) -> Optional[Dict[str, Any]]:
        with self._engine().connect() as conn:
            row = conn.execute(text("SELECT state_json FROM optimize_searches "
                                    "WHERE search_id = :id"), {"id": self.search_id}).fetchone()
        return None if row is None else json.loads(row[0])

    def save(self, state: Dict[str, Any]) -> None:
        cfg = state.get("config", {})
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._engine().begin() as conn:
            conn.execute(text(
                "INSERT INTO optimize_searches (search_id, created_at, updated_at, status, "
                "model_name, target, device, goal, state_json) "
                "VALUES (:id, :now, :now, :status, :model, :target, :device, :goal, :state) "
                "ON CONFLICT (search_id) DO UPDATE SET updated_at = excluded.updated_at, "
                "status = excluded.status, goal = excluded.goal, "
                "state_json = excluded.state_json"),
                {"id": self.search_id, "now": now, "status": state.get("status"),
                 "model": cfg.get("model_name"), "target": cfg.get("target"),
                 "device": cfg.get("device"), "goal": cfg.get("goal_text"),
                 "state": json.dumps(state)})


def list_searches(db: str) -> List[Dict[str, Any]]:
    """Every search in ``db`` (newest first), without their states."""
    log = FarmSearchLog(db, "-")
    try:
        with log._engine().connect() as conn:
            rows = conn.execute(text(
                "SELECT search_id, created_at, updated_at, status, model_name, target, "
                "device, goal FROM optimize_searches ORDER BY created_at DESC")).mappings().all()
    finally:
        log.close()
    return [dict(r) for r in rows]


def load_search(db: str, search_id: str) -> Dict[str, Any]:
    """A saved search's state; an unknown id is an error naming what is there."""
    log = FarmSearchLog(db, search_id)
    try:
        state = log.load()
    finally:
        log.close()
    if state is None:
        known = [r["search_id"] for r in list_searches(db)][:5]
        raise EdgertError(f"no search {search_id!r} in {db}"
                          + (f" (latest: {', '.join(known)})" if known else ""))
    return state
