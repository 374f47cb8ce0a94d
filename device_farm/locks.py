"""One benchmark per device at a time, across processes: device locks.

Why: two ``farm bench`` processes on the same phone or board measure each other
(both numbers are wrong, silently), and their file pushes and runs interleave.
The scheduler already runs one job at a time per device *within* a process;
this makes it hold *between* processes too. Everything that runs on a device
(connect and probe, each job's deploy and run) happens under its lease.

The interface is two calls, so the backend can change without the scheduler
knowing: ``DeviceLocks.acquire(key, holder, wait_s, stop) -> Lease`` and
``holder(key)``. ``FileLocks`` (the default) uses ``flock`` on one file per
device in a folder of this machine: the kernel drops the lock when its process
dies, even by ``kill -9``, so a crashed run never leaves a device locked. It
covers every process on one machine; a team farm whose processes run on several
machines needs a lock they all see: ``pg_locks.PgLocks``, PostgreSQL advisory
locks keyed by the same ``device_key``, registered in ``BACKENDS`` under
``postgresql://`` (the team farm's agents use it; so does ``farm bench`` on a
PostgreSQL store).

A device's key names the physical device, not the inventory entry, so two
inventories that call one board by different names still share its lock:
``ssh:HOST:PORT``, ``adb:SERVER/SERIAL``, ``local:HOSTNAME``.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import threading
import time
from abc import ABC, abstractmethod
from typing import Callable, Dict, Optional

from device_farm.errors import DeviceError

ENV_VAR = "EDGERT_FARM_LOCKS"
#: seconds between two tries of a busy lock
POLL_S = 0.05
#: how long a process that released a device someone waits for stays away from it
YIELD_S = 4 * POLL_S
_HOLDER_BYTES = 1024


class DeviceBusy(DeviceError):
    """The device stayed locked by another process for longer than the wait allowed."""


def device_key(spec) -> str:
    """The physical device a spec reaches (what two processes must agree on)."""
    if spec.transport == "ssh":
        host = str(spec.host).lower()
        return f"ssh:{'127.0.0.1' if host == 'localhost' else host}:{int(spec.port)}"
    if spec.transport == "adb":
        server = (spec.adb_server or "127.0.0.1:5037").lower().replace("localhost", "127.0.0.1")
        if ":" not in server:
            server = f"127.0.0.1:{server}"
        return f"adb:{server}/{spec.serial}"
    if spec.transport == "local":
        return f"local:{platform.node()}"
    return f"{spec.transport}:{spec.name}"


class Lease(ABC):
    """A held device lock; release it (or leave the ``with`` block) when done."""

    key: str
    waited_s: float = 0.0
    owner: Optional["DeviceLocks"] = None

    @abstractmethod
    def _unlock(self) -> None:
        """Drop the lock (once)."""

    def release(self) -> None:
        """Let the next process use the device. If another process is waiting for it,
        this process lets that one go first next time (see ``DeviceLocks.acquire``)."""
        self._unlock()
        if self.owner is not None and self.owner.has_waiters(self.key):
            with self.owner._guard:
                self.owner._yield_until[self.key] = time.monotonic() + YIELD_S

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class DeviceLocks(ABC):
    """Locks of physical devices, shared by every farm process that uses the backend.

    Fairness: a lock is not a queue, and a process that releases a device between two
    jobs and takes it again at once would starve a process waiting for it. So a
    process that saw a waiter when it released the device waits ``YIELD_S`` before
    taking it again: processes on one device take turns, job by job."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._yield_until: Dict[str, float] = {}

    @abstractmethod
    def try_acquire(self, key: str, holder: Dict[str, object]) -> Optional[Lease]:
        """The lease if the device is free now, else None (never blocks)."""

    @abstractmethod
    def holder(self, key: str) -> Optional[Dict[str, object]]:
        """Who holds the device's lock (what it wrote when it took it), if anyone."""

    def waiting(self, key: str):
        """A context manager marking this process as waiting for ``key`` (default: none)."""
        return contextlib.nullcontext()

    def has_waiters(self, key: str) -> bool:
        """Whether another process waits for ``key`` now (default: unknown, False)."""
        return False

    def acquire(self, key: str, holder: Dict[str, object], wait_s: float,
                stop: Optional[threading.Event] = None,
                on_wait: Optional[Callable[[Dict[str, object]], None]] = None) -> Lease:
        """Wait up to ``wait_s`` for the device. ``on_wait(holder)`` is called once if
        the device is busy; ``stop`` set ends the wait (raises DeviceBusy)."""
        t0 = time.monotonic()
        with self._guard:
            pause = self._yield_until.pop(key, 0.0) - t0
        if pause > 0:
            time.sleep(pause)
        lease = self.try_acquire(key, holder)
        if lease is None:
            with self.waiting(key):
                lease = self._wait(key, holder, wait_s, stop, on_wait, t0)
        lease.waited_s = time.monotonic() - t0
        lease.owner = self
        return lease

    def _wait(self, key, holder, wait_s, stop, on_wait, t0) -> Lease:
        told = False
        while True:
            lease = self.try_acquire(key, holder)
            if lease is not None:
                return lease
            other = self.holder(key) or {}
            if not told and on_wait is not None:
                on_wait(other)
                told = True
            waited = time.monotonic() - t0
            if waited >= wait_s or (stop is not None and stop.is_set()):
                raise DeviceBusy(f"device {key} is busy: {describe_holder(other)}; waited "
                                 f"{waited:.0f} s (--lock-wait)")
            time.sleep(POLL_S)


def describe_holder(h: Dict[str, object]) -> str:
    if not h:
        return "held by another process"
    return (f"held by pid {h.get('pid')} on {h.get('host')} (run {h.get('run_id')}, "
            f"device {h.get('device')}, since {h.get('since')})")


class _FileLease(Lease):
    def __init__(self, key: str, fd: int) -> None:
        self.key, self._fd = key, fd
        self._lock = threading.Lock()

    def _unlock(self) -> None:
        with self._lock:
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = -1


class FileLocks(DeviceLocks):
    """``flock`` on ``<folder>/<key>.lock``; the holder's description is the file's text."""

    def __init__(self, folder: Optional[str] = None) -> None:
        super().__init__()
        self.folder = folder or default_folder()
        os.makedirs(self.folder, exist_ok=True)

    def path(self, key: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:80]
        return os.path.join(self.folder,
                            f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.lock")

    def try_acquire(self, key: str, holder: Dict[str, object]) -> Optional[Lease]:
        fd = os.open(self.path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise DeviceError(f"cannot lock device {key} ({self.path(key)}): {exc}") from None
        text = json.dumps(dict(holder, key=key)).encode()
        if len(text) > _HOLDER_BYTES:
            os.ftruncate(fd, 0)
        # padded to a fixed size: no truncation per job (it cost milliseconds on a busy disk)
        os.pwrite(fd, text.ljust(_HOLDER_BYTES), 0)
        return _FileLease(key, fd)

    @contextlib.contextmanager
    def waiting(self, key: str):
        """A shared flock on ``<lock>.wait`` while this process waits (any number share)."""
        fd = os.open(self.path(key) + ".wait", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def has_waiters(self, key: str) -> bool:
        """Someone holds a shared lock on ``<lock>.wait``: an exclusive one fails."""
        fd = os.open(self.path(key) + ".wait", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def holder(self, key: str) -> Optional[Dict[str, object]]:
        try:
            with open(self.path(key)) as f:
                text = f.read()
            return json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None


def default_folder() -> str:
    """$EDGERT_FARM_LOCKS, else ``<edgert cache>/farm/locks``: one folder per machine user.
    Processes of different users share locks only through a folder both can write."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    base = os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgert")
    return os.path.join(base, "farm", "locks")


def _pg_locks(scheme: str) -> Callable[[str], DeviceLocks]:
    def make(rest: str) -> DeviceLocks:
        from device_farm.pg_locks import PgLocks   # psycopg only when asked for

        return PgLocks(f"{scheme}:{rest}")
    return make


#: lock backends by URL scheme ("file:/path" or a bare path, or nothing for the default;
#: "postgresql://...": advisory locks on a farm store's server, seen by every machine)
BACKENDS: Dict[str, Callable[[str], DeviceLocks]] = {
    "file": lambda rest: FileLocks(rest or None),
    "postgresql": _pg_locks("postgresql"), "postgres": _pg_locks("postgres")}


def open_locks(url: Optional[str] = None) -> DeviceLocks:
    """The lock backend named by ``url`` (``file:FOLDER``, ``postgresql://...``; default:
    FileLocks here)."""
    if not url:
        return FileLocks()
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in BACKENDS:
        if "://" not in url:
            return FileLocks(url)
        raise DeviceError(f"lock backend {url!r}: known schemes {', '.join(BACKENDS)}")
    return BACKENDS[scheme](rest)
