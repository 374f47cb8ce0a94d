"""Faults of the team farm, with real parts: an agent killed with SIGKILL in the
middle of a job (its device released at once, the job queued again or recorded
failed, never run twice at once), and the PostgreSQL server restarted in the
middle of a run (agents reconnect, nothing lost, nothing twice)."""
from __future__ import annotations

import json
import time

import pytest

from device_farm.locks import device_key
from device_farm.inventory import host_device
from device_farm.store import ResultStore
from device_farm.testing.postgres import PostgresServer, wait_until
from edgert.files import file_sha256
from tests.farm.helpers import pids_matching
from tests.farm.team_helpers import (
    STALE_S, AgentProcess, busy_device, farm, queue_jobs, submit, write_inventory)

pytestmark = [pytest.mark.needs_postgres]


def test_an_agent_killed_mid_job(pg_store, models, tmp_path, agents):
    """kill -9 of an agent during a job: the device's lock and claim are free at once and
    nothing of the job runs on the device any more; a new agent for the device takes the
    job again (a second try) and records it once. With --max-attempts 1 the job of an
    agent killed the same way is recorded as failed, saying why."""
    from device_farm.pg_locks import PgLocks

    url, cache = pg_store, str(tmp_path / "cache")
    inv = write_inventory(tmp_path / "devices.toml")
    k1 = AgentProcess(url, inv, ["host"], "K1", cache, tmp_path)
    agents.append(k1)
    k1.wait_online()
    run = submit(url, [models["onnx"]], ["host"], cache, "--cooldown", "4")
    busy = busy_device(url, "host")
    assert busy["agent_id"] == "K1" and busy["busy_run_id"] == run
    sha = file_sha256(models["onnx"])
    wait_until(lambda: pids_matching(sha), 30, "the benchmark runs")
    k1.kill()
    locks = PgLocks(url)
    key = device_key(host_device())
    t0 = time.monotonic()
    wait_until(lambda: locks.holder(key) is None, 5, "the device's lock is free")
    lease = locks.try_acquire(key, {"pid": "test"})
    assert lease is not None and time.monotonic() - t0 < 5
    lease.release()
    wait_until(lambda: not pids_matching(sha), 10, "the killed job's benchmark is gone")
    k2 = AgentProcess(url, inv, ["host"], "K2", cache, tmp_path)   # the claim is free
    agents.append(k2)
    k2.wait_online()
    w = farm(["wait", run, "--store", url, "--timeout", "120", "--json"], cache)
    assert w.returncode == 0, w.stderr + k2.log()
    with ResultStore(url) as store:
        rows = store.results(run, latest=False)
    assert [(r["status"], r["agent"]) for r in rows] == [("ok", "K2")]
    # two tries: the one its agent died in, and the one that ran
    assert [(j["status"], j["attempts"]) for j in queue_jobs(url, run)] == [("succeeded", 2)]
    assert "queued again (try 2)" in k2.log()

    run2 = submit(url, [models["mnn"]], ["host"], cache, "--cooldown", "4",
                  "--max-attempts", "1")
    busy_device(url, "host")
    k2.kill()
    w = farm(["wait", run2, "--store", url, "--timeout", "120", "--json"], cache)
    state = json.loads(w.stdout)
    assert w.returncode == 1 and (state["failed"], state["ok"]) == (1, 0), w.stderr
    with ResultStore(url) as store:
        row, = store.results(run2, latest=False)
    assert row["status"] == "error" and row["device"] == "host"
    assert row["error"] == (f"the agent running this job on host stopped (no heartbeat for "
                            f"{STALE_S:g} s) during try 1 of 1; not retried again")
    assert [j["status"] for j in queue_jobs(url, run2)] == ["failed"]
    assert locks.holder(key) is None
    locks.close()


@pytest.mark.needs_sshd
def test_postgres_restarts_mid_run(models, tmp_path, sshd, agents):
    """The database restarts (every connection cut) while two agents run a queued run:
    the agents stay up and reconnect, every job ends ok with exactly one row, and the
    agents' heartbeats come back."""
    cache = str(tmp_path / "cache")
    with PostgresServer() as pg:
        url = pg.create_database("restart")
        inv = write_inventory(tmp_path / "devices.toml", sshd)
        a = AgentProcess(url, inv, ["host"], "A", cache + "-a", tmp_path)
        b = AgentProcess(url, inv, ["board"], "B", cache + "-b", tmp_path)
        agents += [a, b]
        try:
            a.wait_online()
            b.wait_online()
            files = [models["onnx"], models["mnn"], models["hostile"]]
            run = submit(url, files, ["host", "board"], cache, "--cooldown", "1")

            def some_done():
                with ResultStore(url) as store:
                    return len(store.results(run)) >= 2
            wait_until(some_done, 120, "two jobs done")
            pg.restart()
            w = farm(["wait", run, "--store", url, "--timeout", "240", "--json"], cache)
            assert w.returncode == 0, w.stderr + a.log()[-3000:] + b.log()[-3000:]
            with ResultStore(url) as store:
                rows = store.results(run, latest=False)
                agents = {r["agent_id"]: r for r in store.agents()}
            assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
            assert len({r["job_key"] for r in rows}) == 6     # nothing recorded twice
            assert a.proc.poll() is None and b.proc.poll() is None
            assert all(agents[n]["age_s"] < STALE_S for n in ("A", "B"))
            assert "the database is unreachable" in a.log() + b.log()
        finally:
            codes = (a.stop(), b.stop())
        assert codes == (0, 0)
