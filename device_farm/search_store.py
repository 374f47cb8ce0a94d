"""Searches of ``edgert optimize`` kept in the farm's results store.

A search's state (``converters.optimize.state.SearchState``, a JSON object) is
saved after every batch into the table ``optimize_searches`` of the same SQLite
file that holds the farm runs which measured it, so ``--resume SEARCH_ID``
continues it and ``--compare SEARCH_ID`` draws its front beside another one's.
The table is created on first use (its own ``CREATE TABLE IF NOT EXISTS``: the
farm's schema and migrations are untouched, and a store without searches reads as
before). Each save replaces the row of its search: the state already holds every
candidate measured, and each measurement points at its immutable farm row.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any, Dict, List, Optional

from edgert.errors import EdgertError

_TABLE = """CREATE TABLE IF NOT EXISTS optimize_searches (
    search_id TEXT PRIMARY KEY, created_at TEXT, updated_at TEXT, status TEXT,
    model_name TEXT, target TEXT, device TEXT, goal TEXT, state_json TEXT)"""


def new_search_id() -> str:
    return time.strftime("optimize-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class FarmSearchLog:
    """One search's state in the farm store ``db`` (a log for ``converters.optimize``)."""

    def __init__(self, db: str, search_id: Optional[str] = None) -> None:
        from device_farm.store import ResultStore

        with ResultStore(db):          # creates or migrates the farm's own tables first
            pass
        self.db = db
        self.search_id = search_id or new_search_id()
        self.description = f"farm store {db}"
        with self._connect() as con:
            con.execute(_TABLE)

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.db, timeout=30)
        except sqlite3.Error as exc:
            raise EdgertError(f"{self.db}: cannot open the farm store ({exc})") from None
        con.row_factory = sqlite3.Row
        return con

    def load(self) -> Optional[Dict[str, Any]]:
        with self._connect() as con:
            row = con.execute("SELECT state_json FROM optimize_searches WHERE search_id=?",
                              (self.search_id,)).fetchone()
        return None if row is None else json.loads(row["state_json"])

    def save(self, state: Dict[str, Any]) -> None:
        cfg = state.get("config", {})
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._connect() as con:
            con.execute(
                "INSERT INTO optimize_searches VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(search_id) DO UPDATE SET updated_at=excluded.updated_at, "
                "status=excluded.status, goal=excluded.goal, state_json=excluded.state_json",
                (self.search_id, now, now, state.get("status"), cfg.get("model_name"),
                 cfg.get("target"), cfg.get("device"), cfg.get("goal_text"),
                 json.dumps(state)))


def list_searches(db: str) -> List[Dict[str, Any]]:
    """Every search in ``db`` (newest first), without their states."""
    log = FarmSearchLog(db, "-")
    with log._connect() as con:
        rows = con.execute("SELECT search_id, created_at, updated_at, status, model_name, "
                           "target, device, goal FROM optimize_searches "
                           "ORDER BY created_at DESC").fetchall()
    return [dict(r) for r in rows]


def load_search(db: str, search_id: str) -> Dict[str, Any]:
    """A saved search's state; an unknown id is an error naming what is there."""
    state = FarmSearchLog(db, search_id).load()
    if state is None:
        known = [r["search_id"] for r in list_searches(db)][:5]
        raise EdgertError(f"no search {search_id!r} in {db}"
                          + (f" (latest: {', '.join(known)})" if known else ""))
    return state
