"""The team farm's part of the store: submitted model files, agents and the live
state of the devices they hold. Every reader sees the same rows, so device state
(online, throttled, busy, by whom) is visible to the whole team.

Liveness is measured on the database's clock (``db_now``), never by comparing
two machines' clocks: an agent's heartbeat and a reader's "how old is it" are
both the server's time.
"""
from __future__ import annotations

import json
from typing import Dict, Iterable, List, Optional, Set

from sqlalchemy import literal_column, select
from sqlalchemy.exc import IntegrityError

from device_farm.store import schema as t
from device_farm.store.base import now_iso, reconnecting


class TeamTables:
    """Mixed into ``ResultStore`` (which provides ``_engine``, ``_rows``, ``_reader``)."""

    is_postgres: bool

    def db_now(self):
        """The database's clock in epoch seconds, as an SQL expression."""
        if self.is_postgres:
            return literal_column("extract(epoch from clock_timestamp())::float8")
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)")

    # -- model files -----------------------------------------------------------------------
    @reconnecting
    def missing_model_files(self, shas: Iterable[str]) -> Set[str]:
        shas = set(shas)
        have = {r["sha256"] for r in self._rows(  # type: ignore[attr-defined]
            select(t.model_files.c.sha256).where(t.model_files.c.sha256.in_(shas)))}
        return shas - have

    @reconnecting
    def put_model_file(self, sha256: str, name: str, content: bytes) -> None:
        """Keep a model's bytes (once per content) so agents elsewhere can fetch them."""
        try:
            with self._engine.begin() as conn:  # type: ignore[attr-defined]
                conn.execute(t.model_files.insert().values(
                    sha256=sha256, name=name, size=len(content), content=content,
                    created_at=now_iso()))
        except IntegrityError:
            pass   # another submitter stored the same bytes first

    @reconnecting
    def model_file_content(self, sha256: str) -> Optional[bytes]:
        rows = self._rows(select(t.model_files.c.content)  # type: ignore[attr-defined]
                          .where(t.model_files.c.sha256 == sha256))
        return bytes(rows[0]["content"]) if rows else None

    # -- agents ----------------------------------------------------------------------------
    @reconnecting
    def register_agent(self, agent_id: str, host: str, pid: int, user: str,
                       devices: List[str], version: str) -> None:
        with self._engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(t.agents.delete().where(t.agents.c.agent_id == agent_id))
            conn.execute(t.agents.insert().values(
                agent_id=agent_id, host=host, pid=pid, user_name=user,
                devices_json=json.dumps(devices), started_at=now_iso(),
                heartbeat_at=now_iso(), heartbeat_epoch=self.db_now(), status="running",
                edgert_version=version))

    @reconnecting
    def agent_heartbeat(self, agent_id: str, status: str = "running") -> None:
        with self._engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(t.agents.update().where(t.agents.c.agent_id == agent_id).values(
                heartbeat_at=now_iso(), heartbeat_epoch=self.db_now(), status=status))

    @reconnecting
    def agents(self) -> List[Dict[str, object]]:
        """Every agent with ``age_s``: seconds since its last heartbeat (server clock)."""
        q = select(t.agents, (self.db_now() - t.agents.c.heartbeat_epoch).label("age_s")) \
            .order_by(t.agents.c.started_at)
        return self._rows(q)  # type: ignore[attr-defined]

    # -- device state ----------------------------------------------------------------------
    @reconnecting
    def set_device_state(self, name: str, **values: object) -> None:
        """Update what the team sees of one device (insert it the first time)."""
        values = dict(values, updated_at=now_iso(), updated_epoch=self.db_now())
        with self._engine.begin() as conn:  # type: ignore[attr-defined]
            done = conn.execute(t.device_state.update().where(
                t.device_state.c.name == name).values(**values)).rowcount
            if not done:
                conn.execute(t.device_state.insert().values(name=name, **values))

    @reconnecting
    def device_states(self) -> List[Dict[str, object]]:
        """Every device an agent ever held, with its agent's heartbeat age (``agent_age_s``,
        None when the agent is gone) and the agent's status."""
        a = t.agents
        q = (select(t.device_state, (self.db_now() - a.c.heartbeat_epoch).label("agent_age_s"),
                    a.c.status.label("agent_status"), a.c.host.label("agent_host"))
             .select_from(t.device_state.outerjoin(a, a.c.agent_id == t.device_state.c.agent_id))
             .order_by(t.device_state.c.name))
        return self._rows(q)  # type: ignore[attr-defined]
