"""The results store (SQLite file or PostgreSQL), its schema and migrations.

``ResultStore(path_or_url)`` is the one store API of both farm paths: the
one-machine scheduler and the team farm's agents write the same rows through it.
Modules: ``schema`` (tables), ``migrations`` (versioned steps), ``results`` (the
store), ``team_tables`` (model files, agents, device state), ``location`` (paths,
URLs, the farm config), ``copy`` (a SQLite store into PostgreSQL).
"""
from __future__ import annotations

from device_farm.store.base import RECONNECT_S, StoreUnavailable, now_iso
from device_farm.store.results import (
    RESULT_COLUMNS, SCHEMA_VERSION, STATUSES, ResultStore, pick_latest)

__all__ = ["ResultStore", "SCHEMA_VERSION", "RESULT_COLUMNS", "STATUSES", "now_iso",
           "pick_latest", "StoreUnavailable", "RECONNECT_S"]
