"""Device locks in PostgreSQL: the backend of ``locks.DeviceLocks`` that holds
across machines (the team farm), registered under ``postgresql://`` in
``locks.BACKENDS``.

A lease is a session advisory lock, ``pg_try_advisory_lock(NS, id)`` with ``id``
taken from the device key, on a connection of its own that lives as long as the
lease. Why advisory locks: the server drops them when the holding session ends,
so an agent killed with ``kill -9`` (its socket closed by the kernel) releases
its device at once, without a timeout to wait out, and nothing in a process
decides who holds a device. Who holds it is written to ``device_locks`` beside
the lock (and only believed while the lock is really held, per ``pg_locks``).

Namespaces (the first key of the two-int form): ``RUN`` (one benchmark at a
time), ``WAIT`` (shared while waiting, for the fairness of ``DeviceLocks``),
``CLAIM`` (an agent's claim on a device it serves; ``team/claims.py``).

A server restart ends every session and so every lease; the job running then
goes on (its queue job stays "doing", so no other job of the device starts),
and the next job takes a new lease.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from typing import Dict, List, Optional

from device_farm.errors import DeviceError
from device_farm.locks import DeviceLocks, Lease
from device_farm.store import location as loc

RUN, WAIT, CLAIM = 0x6564_0001, 0x6564_0002, 0x6564_0003


def lock_id(key: str) -> int:
    """A device key as the second int of an advisory lock (31 bits: pg_locks shows it)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFF_FFFF


def connect(url: str):
    """An autocommit psycopg connection to a PostgreSQL store."""
    import psycopg

    try:
        return psycopg.connect(loc.conninfo(url), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DeviceError(f"{loc.display(url)}: cannot reach the lock server: "
                          f"{str(exc).strip().splitlines()[0]}") from None


class _PgLease(Lease):
    def __init__(self, locks: "PgLocks", key: str, conn) -> None:
        self.key, self._locks, self._conn = key, locks, conn
        self._guard = threading.Lock()

    def _unlock(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("WITH gone AS (DELETE FROM device_locks WHERE key = %s AND "
                         "backend_pid = pg_backend_pid()) SELECT pg_advisory_unlock(%s, %s)",
                         (self.key, RUN, lock_id(self.key)))
            self._locks._give_back(conn)
        except Exception:  # noqa: BLE001 - a broken session holds no lock any more
            conn.close()


class PgLocks(DeviceLocks):
    """Advisory locks on the PostgreSQL server of ``url`` (a farm store)."""

    def __init__(self, url: str, reconnect_s: float = 120.0) -> None:
        super().__init__()
        from device_farm.store import ResultStore

        self.url, self.reconnect_s = url, reconnect_s
        ResultStore(url).close()    # the schema (device_locks) is there
        self._idle: List[object] = []
        self._pool_guard = threading.Lock()

    def _conn(self):
        with self._pool_guard:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:   # type: ignore[attr-defined]
                    return conn
        return connect(self.url)

    def _give_back(self, conn) -> None:
        with self._pool_guard:
            if len(self._idle) < 4:
                self._idle.append(conn)
                return
        conn.close()

    def _on_fresh_connection(self, what: str, fn):
        """``fn(conn)`` on a pooled connection; when the server cut it (a restart) or is
        away, again on a new one for up to ``reconnect_s`` seconds."""
        import psycopg

        deadline = time.monotonic() + self.reconnect_s
        while True:
            try:
                conn = self._conn()
            except DeviceError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            try:
                return fn(conn)
            except psycopg.OperationalError as exc:
                conn.close()
                if time.monotonic() > deadline:
                    raise DeviceError(f"{what} on {loc.display(self.url)}: "
                                      f"{str(exc).strip().splitlines()[0]}") from None
                time.sleep(0.5)

    def try_acquire(self, key: str, holder: Dict[str, object]) -> Optional[Lease]:
        def take(conn) -> Optional[Lease]:
            # one round trip: the lock, and the holder's note only if the lock was had
            got = conn.execute(
                "WITH l AS (SELECT pg_try_advisory_lock(%s, %s) AS got) "
                "INSERT INTO device_locks (key, holder_json, backend_pid) "
                "SELECT %s, %s, pg_backend_pid() FROM l WHERE l.got "
                "ON CONFLICT (key) DO UPDATE SET holder_json = EXCLUDED.holder_json, "
                "backend_pid = EXCLUDED.backend_pid RETURNING 1",
                (RUN, lock_id(key), key, json.dumps(dict(holder, key=key)))).fetchone()
            if not got:
                self._give_back(conn)
                return None
            return _PgLease(self, key, conn)

        return self._on_fresh_connection(f"cannot lock device {key}", take)

    def holder(self, key: str) -> Optional[Dict[str, object]]:
        conn = self._conn()
        try:
            row = conn.execute(
                "SELECT d.holder_json FROM device_locks d JOIN pg_locks p ON "
                "p.locktype = 'advisory' AND p.granted AND p.pid = d.backend_pid AND "
                "p.classid = %s AND p.objid = %s WHERE d.key = %s",
                (RUN, lock_id(key), key)).fetchone()
            self._give_back(conn)
        except Exception:  # noqa: BLE001 - the holder is a courtesy; unknown is an answer
            conn.close()
            return None
        return json.loads(row[0]) if row else None

    @contextlib.contextmanager
    def waiting(self, key: str):
        """A shared advisory lock in the WAIT namespace while this process waits."""
        conn = self._conn()
        try:
            conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (WAIT, lock_id(key)))
            yield
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", (WAIT, lock_id(key)))
                self._give_back(conn)
            except Exception:  # noqa: BLE001
                conn.close()

    def has_waiters(self, key: str) -> bool:
        conn = self._conn()
        try:
            # CASE evaluates in order: unlock only what was locked
            waiters = conn.execute(
                "SELECT CASE WHEN pg_try_advisory_lock(%s, %s) THEN NOT "
                "pg_advisory_unlock(%s, %s) ELSE true END",
                (WAIT, lock_id(key), WAIT, lock_id(key))).fetchone()[0]
            self._give_back(conn)
            return bool(waiters)
        except Exception:  # noqa: BLE001
            conn.close()
            return False

    def close(self) -> None:
        with self._pool_guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()   # type: ignore[attr-defined]
