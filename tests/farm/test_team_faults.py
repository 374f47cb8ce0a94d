"""Faults of the team farm, with real parts: an agent killed with SIGKILL in the
middle of a job (its device released at once, the job queued again or recorded
failed, never run twice at once), the PostgreSQL server crashed or restarted in
the middle of a run (agents reconnect, nothing lost, nothing twice), and a queue
job a crash left "doing" for an agent that does not run it (run again)."""
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
    # K2's janitor queues the job again (before `farm wait` runs its own janitor, which
    # would do it silently)
    wait_until(lambda: "queued again (try 2)" in k2.log(), 30, "the job queued again")
    w = farm(["wait", run, "--store", url, "--timeout", "120", "--json"], cache)
    assert w.returncode == 0, w.stderr + k2.log()
    with ResultStore(url) as store:
        rows = store.results(run, latest=False)
    assert [(r["status"], r["agent"]) for r in rows] == [("ok", "K2")]
    # two tries: the one its agent died in, and the one that ran
    assert [(j["status"], j["attempts"]) for j in queue_jobs(url, run)] == [("succeeded", 2)]

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
@pytest.mark.parametrize("outage", ["crash", "restart"])
def test_postgres_restarts_mid_run(models, tmp_path, sshd, agents, outage):
    """The database goes away (every connection cut) while two agents run a queued run:
    "crash" stops the server at once and starts it again once both agents logged it
    away (a few seconds: jobs end during the outage, their end written when it is
    back); "restart" is a quick clean restart, possibly between two heartbeats. The
    agents stay up and reconnect, every job ends ok with exactly one row, and the
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
            if outage == "crash":
                pg.stop_server()
                wait_until(lambda: all("the database is unreachable" in x.log()
                                       for x in (a, b)), 60, "both agents see it away")
                pg.start()
            else:
                pg.restart()
            w = farm(["wait", run, "--store", url, "--timeout", "120", "--json"], cache)
            assert w.returncode == 0, w.stderr + a.log()[-3000:] + b.log()[-3000:]
            with ResultStore(url) as store:
                rows = store.results(run, latest=False)
                agents = {r["agent_id"]: r for r in store.agents()}
            assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
            assert len({r["job_key"] for r in rows}) == 6     # nothing recorded twice
            # each queue job ended once, on its first try
            assert sorted((j["status"], j["attempts"]) for j in queue_jobs(url, run)) == \
                [("succeeded", 1)] * 6
            assert a.proc.poll() is None and b.proc.poll() is None
            assert all(agents[n]["age_s"] < STALE_S for n in ("A", "B"))
            if outage == "crash":
                assert all("the database is back" in x.log() for x in (a, b))
        finally:
            codes = (a.stop(), b.stop())
        assert codes == (0, 0)


def test_an_agent_says_at_once_when_its_heartbeat_cannot_reach_the_database(
        pg_store, tmp_path, agents):
    """The server refuses new connections and cuts every session but the claims' (the
    state of a crash between the claims' check and the heartbeat's write: the claims'
    connection still answers, the heartbeat's must be made again). The agent logs the
    database away within a few heartbeats (it used to wait out the jobs' two-minute
    reconnect window first, saying nothing: the crash test's flake), and back once the
    server lets it in."""
    import psycopg

    url, cache = pg_store, str(tmp_path / "cache")
    inv = write_inventory(tmp_path / "devices.toml")
    a = AgentProcess(url, inv, ["host"], "H", cache, tmp_path)
    agents.append(a)
    a.wait_online()
    with psycopg.connect(url, autocommit=True) as conn, \
            psycopg.connect(url, autocommit=True, dbname="postgres") as admin:
        db = conn.execute("SELECT current_database()").fetchone()[0]
        claims = {pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")}
        assert claims, "the agent's claims hold no advisory lock"
        admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        try:
            cut = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                "datname = current_database() AND pid <> pg_backend_pid() AND "
                "NOT (pid = ANY(%s))", (list(claims),)).fetchone()[0]
            assert cut >= 1
            t0 = time.monotonic()
            wait_until(lambda: "the database is unreachable" in a.log(), 15,
                       "the agent logs the database away")
            away_s = time.monotonic() - t0
        finally:
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        wait_until(lambda: "the database is back" in a.log(), 30, "the agent logs it back")
    assert away_s < 15 and a.proc.poll() is None
    assert a.stop() == 0


def test_a_job_the_queue_lost_is_run_again(pg_store, models, tmp_path, agents):
    """A queue job left "doing" for an agent's live worker that does not run it (the
    state a crashed server leaves when it comes back without its last commits: the
    job's end, or the worker's taking it, lost) blocks every later job of its device
    (the device's queue lock). The agent's janitor sees it does not hold the job and
    queues it again: both jobs run, one row each."""
    import psycopg

    from device_farm.team.janitor import _JANITOR_LOCK

    url, cache = pg_store, str(tmp_path / "cache")
    inv = write_inventory(tmp_path / "devices.toml")
    first = AgentProcess(url, inv, ["host"], "K0", cache, tmp_path)   # describes host
    agents.append(first)
    first.wait_online()
    assert first.stop() == 0
    run = submit(url, [models["onnx"], models["mnn"]], ["host"], cache,
                 "--wait-for-agent", "600")
    with psycopg.connect(url, autocommit=True) as conn:
        # no janitor acts while the state is built (it would retry the job at once)
        conn.execute("SELECT pg_advisory_lock(%s)", (_JANITOR_LOCK,))
        lost = conn.execute("SELECT id FROM procrastinate_fetch_job_v2(%s, NULL)",
                            (["device:host"],)).fetchone()[0]
        k = AgentProcess(url, inv, ["host"], "K", cache, tmp_path)
        agents.append(k)
        k.wait_online()
        worker = wait_until(lambda: conn.execute(
            "SELECT max(id) FROM procrastinate_workers").fetchone()[0], 30, "K's worker")
        conn.execute("UPDATE procrastinate_jobs SET worker_id = %s WHERE id = %s",
                     (worker, lost))
        conn.execute("SELECT pg_advisory_unlock(%s)", (_JANITOR_LOCK,))
    w = farm(["wait", run, "--store", url, "--timeout", "60", "--json"], cache)
    assert w.returncode == 0, w.stderr + k.log()
    with ResultStore(url) as store:
        rows = store.results(run, latest=False)
    assert sorted(r["status"] for r in rows) == ["ok", "ok"]
    assert len({r["job_key"] for r in rows}) == 2
    jobs = {j["key"]: j for j in queue_jobs(url, run)}
    key = next(j["key"] for j in jobs.values() if j["attempts"] == 2)
    assert sorted((j["status"], j["attempts"]) for j in jobs.values()) == \
        [("succeeded", 1), ("succeeded", 2)]
    assert (f"janitor: {run}/{key}: the queue lost it (a database outage) during the job; "
            f"queued again (try 2)") in k.log()
    assert k.proc.poll() is None


def test_a_job_end_is_written_once_the_database_is_back():
    """The end of a job that returns while the database is away: procrastinate's own
    job manager gives up when the pool waits in vain (the job would stay "doing" for a
    live worker), the agent's writes it again until the server is back; a refused
    write (the job already ended) is not tried again."""
    import asyncio
    from types import SimpleNamespace

    from procrastinate import exceptions, jobs, manager

    from device_farm.team import queue as q
    from device_farm.team.held import HeldJobs

    async def scenario(pg, url):
        held = HeldJobs()
        app = q.make_app(url, lambda context, run_id, job_key: None, held=held,
                         pool_timeout_s=1.0)
        async with app.open_async():
            jm = app.job_manager
            worker = await jm.register_worker()
            job = await jm.fetch_job([q.queue_name("host")], worker)
            assert job is not None and held.snapshot() == ({job.id}, {worker})
            await asyncio.to_thread(pg.stop_server)
            with pytest.raises(exceptions.ConnectorException):
                await manager.JobManager(app.connector).finish_job(
                    job, jobs.Status.SUCCEEDED, delete_job=False)
            end = asyncio.ensure_future(jm.finish_job(job, jobs.Status.SUCCEEDED, False))
            await asyncio.sleep(2.0)
            assert not end.done()           # still trying: nothing raised
            await asyncio.to_thread(pg.start)
            await asyncio.wait_for(end, 60)
            assert held.snapshot() == (set(), {worker})
            t0 = time.monotonic()
            with pytest.raises(exceptions.ConnectorException):   # refused: not in "doing"
                await jm.finish_job(job, jobs.Status.SUCCEEDED, False)
            assert time.monotonic() - t0 < 1.0
            return await jm.get_job_status_async(job.id)

    with PostgresServer() as pg:
        url = pg.create_database("end")
        q.ensure_schema(url)
        sync = q.make_app(url)
        with sync.open():
            q.defer_jobs(sync, "run-1", [SimpleNamespace(device="host", key="k1")])
        assert asyncio.run(scenario(pg, url)) == jobs.Status.SUCCEEDED
