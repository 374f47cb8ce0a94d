"""The team farm with real parts: a real PostgreSQL server, two agents on this
machine playing two USB hosts (A: the host and the real-sshd board; B: the ADB
simulator's phone behind the real adb server), submitters as processes.
Faults of agents and of the database are in test_team_faults.py."""
from __future__ import annotations

import json
import threading
from datetime import datetime

import pytest

from device_farm.store import ResultStore
from tests.farm.team_helpers import AgentProcess, farm, submit, write_inventory

pytestmark = [pytest.mark.needs_sshd, pytest.mark.needs_adb, pytest.mark.needs_postgres]


@pytest.fixture(scope="module")
def team(tmp_path_factory, postgres, sshd, adb_server, phone):
    d = tmp_path_factory.mktemp("team")
    url = postgres.create_database("team")
    inv = write_inventory(d / "devices.toml", sshd, adb_server, phone)
    cache = str(d / "cache")
    a = AgentProcess(url, inv, ["host", "board"], "A", cache + "-a", d)
    b = AgentProcess(url, inv, ["pixel"], "B", cache + "-b", d)
    try:
        a.wait_online()
        b.wait_online()
        yield {"url": url, "inventory": inv, "cache": cache, "dir": d, "agents": (a, b)}
    finally:
        codes = (a.stop(), b.stop())
    assert codes == (0, 0), (a.log()[-2000:], b.log()[-2000:])


def _t(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def test_two_submitters_two_agents(team, models):
    """Two submitters at once, each a run of 2 files x 3 devices: `submit` returns a run
    id at once; every job runs on the agent that holds its device, one at a time per
    device across both runs; `wait` and `report` follow each run."""
    url, cache = team["url"], team["cache"]
    run_ids = [None, None]

    def one(i):
        run_ids[i] = submit(url, [models["onnx"], models["mnn"]], ["host", "board", "pixel"],
                            cache, "--run-id", f"team-{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run_ids == ["team-0", "team-1"]
    waits = [farm(["wait", r, "--store", url, "--timeout", "240", "--json"], cache)
             for r in run_ids]
    for w in waits:
        assert w.returncode == 0, w.stderr
        state = json.loads(w.stdout)
        assert (state["planned"], state["ok"], state["failed"], state["not_run"],
                state["done"]) == (6, 6, 0, 0, True)
    with ResultStore(url) as store:
        rows = store.results("team-0") + store.results("team-1")
        runs = {r: store.run(r) for r in run_ids}
        states = {s["name"]: s for s in store.device_states()}
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert {(r["device"], r["agent"]) for r in rows} == {("host", "A"), ("board", "A"),
                                                         ("pixel", "B")}
    for device in ("host", "board", "pixel"):
        mine = sorted((r for r in rows if r["device"] == device),
                      key=lambda r: _t(r["started_at"]))
        assert len(mine) == 4
        for x, y in zip(mine, mine[1:]):      # one job at a time on each device
            assert _t(x["finished_at"]) <= _t(y["started_at"]), device
        assert states[device]["online"] and states[device]["busy_job_key"] is None
    for r in run_ids:
        assert runs[r]["status"] == "done" and runs[r]["mode"] == "queue"
        assert json.loads(runs[r]["summary_json"])["ok"] == 6
    out = team["dir"] / "report"
    rep = farm(["report", "team-1", "--store", url, "--out", str(out), "--no-plots"], cache)
    assert rep.returncode == 0, rep.stderr
    cells = json.load(open(out / "report.json"))["cells"]
    by_job = {r["job_key"]: r for r in rows if r["run_id"] == "team-1"}
    assert len(cells) == 6
    for c in cells:
        assert c["value_ms"] == by_job[c["job_key"]]["median_ms"]


def test_a_second_agent_for_a_served_device_is_refused(team, tmp_path, agents):
    """Two agents never serve one device: refused by name, and by the physical device
    under another name (the same machine's `local` device)."""
    url, cache = team["url"], team["cache"]
    alias = write_inventory(tmp_path / "alias.toml",
                            extra='\n[[device]]\nname = "alias"\ntransport = "local"\n')
    for inv, device, why in ((team["inventory"], "host", "device host (local:"),
                             (alias, "alias", "device alias (local:")):
        c = AgentProcess(url, inv, [device], "C", cache + "-c", tmp_path)
        agents.append(c)
        rc = c.proc.wait(60)
        log = c.log()
        c.stop()
        assert rc == 2, log
        assert why in log and "is already served by agent A" in log, log
    with ResultStore(url) as store:   # A still serves both of its devices
        states = {s["name"]: s for s in store.device_states()}
    assert states["host"]["agent_id"] == "A" and states["host"]["online"]
    assert "alias" not in states
    shown = farm(["devices", "--team", "--store", url, "--json"], cache)
    assert shown.returncode == 0, shown.stderr
    assert {(d["name"], d["state"], d["agent_id"]) for d in json.loads(shown.stdout)} == \
        {("host", "online", "A"), ("board", "online", "A"), ("pixel", "online", "B")}


def test_a_device_no_agent_serves(team, models, tmp_path, own_phone, adb_server, agents):
    """A device no live agent serves is a clear state: refused at submit with the devices
    that are served; queued with --wait-for-agent, `wait` says it waits for an agent,
    and after that time its jobs are recorded as not run (never a silent wait)."""
    url, cache = team["url"], team["cache"]
    res = farm(["submit", models["onnx"], "--store", url, "--devices", "nokia"], cache)
    assert res.returncode == 2
    assert "no live agent serves device(s) nokia (served now: board (A), host (A), pixel (B))" \
        in res.stderr
    inv = write_inventory(tmp_path / "p2.toml", extra=(
        f'\n[[device]]\nname = "phone2"\ntransport = "adb"\nserial = "{own_phone.address}"\n'
        f'adb_server = "{adb_server.address}"\n'))
    e = AgentProcess(url, inv, ["phone2"], "E", cache + "-e", tmp_path)
    agents.append(e)
    e.wait_online()
    assert e.stop() == 0               # the agent is gone; its device is known, not served
    res = farm(["submit", models["onnx"], "--store", url, "--devices", "phone2"], cache)
    assert res.returncode == 2 and "no live agent serves device(s) phone2" in res.stderr
    run = submit(url, [models["onnx"]], ["phone2"], cache, "--wait-for-agent", "8")
    w = farm(["wait", run, "--store", url, "--timeout", "60"], cache)
    assert "WAITING FOR AN AGENT: no live agent serves phone2" in w.stderr
    assert w.returncode == 1 and "1/1 ended (0 ok, 0 failed, 1 not run)" in w.stdout
    with ResultStore(url) as store:
        row, = store.results(run)
        assert store.run(run)["status"] == "done-with-errors"
    assert row["status"] == "not_run" and row["device"] == "phone2"
    assert row["error"] == ("not run: no agent served device phone2 for 8 s after the run "
                            "was submitted")


def test_submit_needs_postgres(tmp_path, models):
    res = farm(["submit", models["onnx"], "--store", str(tmp_path / "x.sqlite")],
               str(tmp_path / "cache"))
    assert res.returncode == 2
    assert "the team farm's queue needs a PostgreSQL store" in res.stderr
