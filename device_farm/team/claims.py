"""Which agent serves which device: a claim per device, refused when another
live agent holds it.

A claim is a session advisory lock in the ``CLAIM`` namespace (``pg_locks``) on
the device's name and on its physical key (``locks.device_key``), so two agents
can claim neither the same name nor the same phone under two names. The locks
live on one connection of the agent: when the agent dies the server drops them
and the device can be claimed again at once. After a server restart the agent
reconnects and claims its devices again (``renew``).
"""
from __future__ import annotations

import threading
from typing import Dict, List, Optional

from device_farm.errors import DeviceError
from device_farm.pg_locks import CLAIM, connect, lock_id


class ClaimRefused(DeviceError):
    """A device is already served by another agent."""


class Claims:
    def __init__(self, url: str, devices: Dict[str, str]) -> None:
        """``devices``: name -> physical device key."""
        self.url, self.devices = url, dict(devices)
        self._conn = None
        self._guard = threading.Lock()

    def _ids(self) -> List[int]:
        ids = []
        for name, key in self.devices.items():
            ids += [lock_id("name:" + name), lock_id("key:" + key)]
        return ids

    def claim(self, describe_holder) -> None:
        """Take every claim or none; ``describe_holder(name, key) -> str`` names who holds
        a device when one is refused."""
        with self._guard:
            conn = connect(self.url)
            refused: List[str] = []
            for name, key in self.devices.items():
                for ident in (lock_id("name:" + name), lock_id("key:" + key)):
                    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                       (CLAIM, ident)).fetchone()[0]
                    if not got:
                        refused.append(f"device {name} ({key}) is already served by "
                                       f"{describe_holder(name, key)}")
                        break
            if refused:
                conn.close()   # drops the claims this call took
                raise ClaimRefused("; ".join(refused) + ": one agent per device (stop the "
                                   "other agent, or leave the device out of --devices)")
            self._conn = conn

    def renew(self, describe_holder) -> bool:
        """Check the claims' connection; after a server restart, claim again. False when
        the connection is down (try later); ClaimRefused when another agent took over."""
        with self._guard:
            conn = self._conn
        try:
            if conn is not None and not conn.closed:
                conn.execute("SELECT 1")
                return True
        except Exception:  # noqa: BLE001 - psycopg's errors: the session is gone
            pass
        try:
            if conn is not None:
                conn.close()
            self.claim(describe_holder)
        except ClaimRefused:
            raise
        except DeviceError:
            return False
        return True

    def close(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def holder_text(store, name: str, key: str) -> str:
    """Who serves the device (by its name, else its physical key), from the device state
    the team sees."""
    rows = store.device_states()
    for row in sorted(rows, key=lambda r: (r["name"] != name, r.get("agent_age_s") or 1e9)):
        if row["name"] == name or row["device_key"] == key:
            age: Optional[float] = row.get("agent_age_s")
            return (f"agent {row['agent_id']} on {row.get('agent_host')}"
                    + (f" (heartbeat {age:.0f} s ago)" if age is not None else ""))
    return "another agent"
