"""What every part of the store shares: the time stamp of a row, the error of an
unreachable server, and the retry that carries a call over a server restart."""
from __future__ import annotations

import functools
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from edgert.errors import EdgertError

#: how long a PostgreSQL store retries a call whose connection broke (a server restart)
RECONNECT_S = 120.0
R = TypeVar("R")


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class StoreError(EdgertError):
    """The database refused a statement (a constraint, a broken file)."""


class StoreUnavailable(StoreError):
    """The database could not be reached or used (for longer than the store waits)."""


def first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0]


def reconnecting(method: Callable[..., R]) -> Callable[..., R]:
    """Retry a store call on a new connection while a PostgreSQL server is away
    (``self.reconnect_s`` seconds at most); other database errors are not retried."""

    @functools.wraps(method)
    def call(self, *args, **kwargs) -> R:
        deadline = time.monotonic() + self.reconnect_s
        while True:
            try:
                return method(self, *args, **kwargs)
            except (OperationalError, DBAPIError) as exc:
                lost = isinstance(exc, OperationalError) or exc.connection_invalidated
                if self.is_postgres and lost and time.monotonic() <= deadline:
                    time.sleep(0.5)
                    continue
                kind = StoreUnavailable if lost else StoreError
                raise kind(f"{self.name}: {first_line(exc)}") from None

    return call
