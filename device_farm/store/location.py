"""Where a store is: a SQLite file (a path, the embedded default) or a
PostgreSQL database (``postgresql://user:password@host:port/dbname``, the team
farm's). One place turns what the user typed into an SQLAlchemy URL, a libpq
conninfo (for the queue) and a name safe to print (no password).

Where the farm finds its store when ``--store`` is not given: ``$EDGERT_FARM_STORE``,
else ``store = ...`` in ``./farm.toml`` (or ``$EDGERT_FARM_CONFIG``), else
``farm_results.sqlite`` in the current folder (as before the team farm).
"""
from __future__ import annotations

import os
import re
from typing import Optional

from edgert.errors import EdgertError

DEFAULT_STORE = "farm_results.sqlite"
STORE_ENV = "EDGERT_FARM_STORE"
CONFIG_ENV = "EDGERT_FARM_CONFIG"
CONFIG_FILE = "farm.toml"
_PG = ("postgresql://", "postgres://", "postgresql+psycopg://")


def is_postgres(location: str) -> bool:
    return location.startswith(_PG)


def sqlalchemy_url(location: str) -> str:
    """The SQLAlchemy URL of a store (psycopg 3 for PostgreSQL)."""
    if is_postgres(location):
        return "postgresql+psycopg://" + location.split("://", 1)[1]
    if location.startswith("sqlite:///"):
        return location
    return "sqlite:///" + os.path.abspath(location)


def conninfo(location: str) -> str:
    """The libpq form of a PostgreSQL store (what psycopg and the queue connect with)."""
    if not is_postgres(location):
        raise EdgertError(f"{display(location)}: the team farm's queue needs a PostgreSQL "
                          "store (--store postgresql://USER@HOST:PORT/DB); a SQLite file "
                          "serves one machine (edgert farm bench)")
    return "postgresql://" + location.split("://", 1)[1]


def display(location: str) -> str:
    """The store's name with any password masked."""
    return re.sub(r"(://[^/:@]+:)[^@/]*@", r"\1***@", location)


def exists(location: str) -> bool:
    """Whether the store is there to read (a database server is assumed to be)."""
    if is_postgres(location):
        return True
    path = location[len("sqlite:///"):] if location.startswith("sqlite:///") else location
    return os.path.exists(path)


def resolve_store(given: Optional[str] = None) -> str:
    """The store to use: ``given``, else $EDGERT_FARM_STORE, else farm.toml's ``store``,
    else farm_results.sqlite."""
    if given:
        return given
    if os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    path = os.environ.get(CONFIG_ENV) or (CONFIG_FILE if os.path.exists(CONFIG_FILE) else None)
    if path:
        store = read_config(path).get("store")
        if store:
            return str(store)
    return DEFAULT_STORE


def read_config(path: str) -> dict:
    """``farm.toml``: ``store = "postgresql://..."`` (and nothing else yet)."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EdgertError(f"{path}: cannot read the farm config: {exc}") from None
    unknown = sorted(set(data) - {"store"})
    if unknown:
        raise EdgertError(f"{path}: unknown key(s) {', '.join(unknown)}; known: store")
    if "store" in data and not isinstance(data["store"], str):
        raise EdgertError(f"{path}: store must be a string (a path or postgresql://...)")
    return data
