"""Helpers of the team-farm tests: agents and submitters as real processes
(`python -m edgert farm ...`) against a real PostgreSQL server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from device_farm.store import ResultStore
from device_farm.testing.postgres import wait_until
from tests.farm.helpers import board_toml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: agents beat every HEARTBEAT_S and count as dead after STALE_S (fast, for tests)
HEARTBEAT_S, STALE_S = 0.5, 3.0


def env(cache_dir: str) -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=ROOT, EDGERT_CACHE_DIR=cache_dir,
                EDGERT_FARM_STALE_S=str(STALE_S))


def write_inventory(path, sshd=None, adb_server=None, phone=None, extra: str = "") -> str:
    """host (this machine, the test's Python), board (the real sshd), pixel (the ADB
    simulator behind the real adb server)."""
    text = f'[[device]]\nname = "host"\ntransport = "local"\npython = "{sys.executable}"\n'
    if sshd is not None:
        text += "\n" + board_toml(sshd, os.path.join(os.path.dirname(str(path)), "board-work"))
    if phone is not None:
        text += f"""
[[device]]
name = "pixel"
transport = "adb"
serial = "{phone.address}"
adb_server = "{adb_server.address}"
"""
    path.write_text(text + extra)
    return str(path)


class AgentProcess:
    """`edgert farm agent` in a process of its own, its log in a file."""

    def __init__(self, url: str, inventory: str, devices: List[str], name: str, cache: str,
                 log_dir) -> None:
        self.name, self.url = name, url
        self.log_path = os.path.join(str(log_dir), f"agent-{name}.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgert", "farm", "agent", "--store", url, "--inventory",
             inventory, "--devices", ",".join(devices), "--name", name, "--no-engines",
             "--heartbeat", str(HEARTBEAT_S), "--stale-after", str(STALE_S)],
            env=env(cache), stdout=self._log, stderr=subprocess.STDOUT)
        self.devices = devices

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def wait_online(self, timeout: float = 60) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent {self.name} exited: {self.log()}")
            with ResultStore(self.url) as store:
                rows = {r["name"]: r for r in store.device_states()}
            return all(rows.get(d, {}).get("agent_id") == self.name and rows[d]["online"]
                       for d in self.devices) and "serving" in self.log()
        wait_until(ready, timeout, f"agent {self.name} online", every=0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(30)
        self._log.close()
        return rc


def farm(args: List[str], cache: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgert", "farm", *args], env=env(cache),
                          capture_output=True, text=True, timeout=timeout)


def submit(url: str, models: List[str], devices: List[str], cache: str,
           *extra: str) -> str:
    res = farm(["submit", *models, "--store", url, "--devices", ",".join(devices),
                "--runs", "5", "--warmup", "1", "--json", *extra], cache)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["run_id"]


def queue_jobs(url: str, run_id: str) -> List[Dict[str, object]]:
    """The run's procrastinate jobs (status, attempts, queue)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT args->>'job_key', status::text, attempts, queue_name "
                            "FROM procrastinate_jobs WHERE args->>'run_id' = %s",
                            (run_id,)).fetchall()
    return [{"key": k, "status": s, "attempts": a, "queue": q} for k, s, a, q in rows]


def busy_device(url: str, device: str, timeout: float = 60) -> Dict[str, object]:
    def busy() -> Optional[Dict[str, object]]:
        with ResultStore(url) as store:
            row = {r["name"]: r for r in store.device_states()}.get(device)
        return row if row and row["busy_job_key"] else None
    return wait_until(busy, timeout, f"{device} busy", every=0.1)


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))
