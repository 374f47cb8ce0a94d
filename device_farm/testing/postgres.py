"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks: a fresh
cluster (``initdb``) in a temporary folder, started with ``pg_ctl`` on a free
port, trust authentication for one user, fsync off for speed.

Commits stay synchronous (the server's default): with fsync off a commit costs a
write to the page cache, and ``stop_server()`` (an immediate stop: a crash) then
loses no committed transaction, as on a production server. With
``synchronous_commit=off`` a crash drops the last few hundred ms of commits: the
farm recovers from that too (a queue job whose end was lost is settled by its
agent's janitor; ``tests/farm/test_team_faults.py`` builds that state on
purpose), but a crash test would then take a different path on each run.

PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` system user (Debian's package creates it) through ``runuser``, in
a folder that user owns. ``restart()`` is a real restart (every connection is
cut), for the tests that check agents ride one out.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import List, Optional

from device_farm.testing.sshd import free_port, wait_port

USER = "edgert"


def find_bindir() -> Optional[str]:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    return next((d for d in reversed(dirs) if os.path.exists(os.path.join(d, "pg_ctl"))), None)


class PostgresServer:
    def __init__(self, bindir: Optional[str] = None, port: Optional[int] = None) -> None:
        self.bindir = bindir or find_bindir()
        if not self.bindir:
            raise FileNotFoundError("PostgreSQL's initdb/pg_ctl not found (apt-get install "
                                    "postgresql)")
        self.port = port or free_port()
        self._as: List[str] = []
        owner = None
        if os.geteuid() == 0:   # PostgreSQL will not run as root
            owner = pwd.getpwnam("postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        # not under the caller's temp folder: pytest's is private to root
        self.dir = tempfile.mkdtemp(prefix="edgert-pg-", dir="/tmp")
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        cmd = self._as + [os.path.join(self.bindir, tool), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{tool} failed ({res.returncode}): {res.stderr.strip()}\n{log}")

    def start(self) -> "PostgresServer":
        if not os.path.exists(self.data):
            self._run("initdb", "-D", self.data, "-U", USER, "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--no-instructions", timeout=120)
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        opts = (f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off "
                "-c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", action, "-D", self.data, "-l", self.log, "-w", "-t", "60",
                  "-o", opts, *extra)
        if action != "stop":
            wait_port(self.port, 30)

    def restart(self) -> None:
        """Stop (cutting every connection) and start again on the same port."""
        self._pg_ctl("restart", "-m", "fast")

    def stop_server(self) -> None:
        """Stop at once, as a crash would (every connection cut, no shutdown
        checkpoint); ``start()`` recovers from the WAL."""
        self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "60")

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self.stop_server()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(check, timeout: float, what: str, every: float = 0.1):
    """Poll ``check()`` until it returns something true; its value, or TimeoutError."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(every)
