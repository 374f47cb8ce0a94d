"""``edgert optimize`` through the farm: a board (the real sshd behind a proxy) whose
link is cut in the middle of the search; the search stops with its state in the farm
store and resumes on the board once it is back, measuring nothing twice. And the
command itself on the host: an unreachable budget exits 1 naming the closest point,
the search is listed from the store, a bad goal exits 2 with its reason."""
from __future__ import annotations

import subprocess
import sys

import pytest

from converters.optimize import Goal, SpaceSpec, optimize
from converters.optimize.search import SearchStopped
from device_farm.latency_meter import FarmMeter
from device_farm.search_store import FarmSearchLog, list_searches
from device_farm.store import ResultStore
from device_farm.testing.sshd import LinkProxy
from tests.farm.helpers import board_spec, inventory
from tests.optimize.tiny import tiny_files

pytestmark = [pytest.mark.needs_sshd]
SPACE = dict(precisions=("fp32", "int8"), keeps=(1.0,))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_files(str(tmp_path_factory.mktemp("tiny-farm")))


def _meter(sshd, db, proxy):
    inv = inventory(board_spec(sshd, "board", port=proxy.port))
    return FarmMeter("board", db=db, inventory=inv, runs=5, warmup=1, retries=0)


def test_board_dropping_mid_search_resumes_from_the_store(tiny, sshd, tmp_path):
    model, npz = tiny
    db, out = str(tmp_path / "farm.sqlite"), str(tmp_path / "out")
    proxy = LinkProxy(sshd.port)

    def cut_in_probes(e):
        if e["kind"] == "batch_built" and e.get("phase") == "probes":
            proxy.cut()

    log = FarmSearchLog(db)
    with pytest.raises(SearchStopped, match="resume"):
        optimize(model, evaluate=npz, goal=Goal(max_drop=5.0), meter=_meter(sshd, db, proxy),
                 log=log, device="board", space=SpaceSpec(**SPACE), out_dir=out,
                 on_event=cut_in_probes, search_minutes=5)
    saved = log.load()
    assert saved["status"] == "stopped"
    first = {k for k, r in saved["results"].items()
             if r["measurement"] and r["measurement"]["ok"]}
    assert len(first) >= 2                   # the baselines were measured on the board
    assert [s["search_id"] for s in list_searches(db)] == [log.search_id]

    back = LinkProxy(sshd.port)                # the board is back (a new link)
    res = optimize(model, evaluate=npz, goal=Goal(max_drop=5.0), meter=_meter(sshd, db, back),
                   log=FarmSearchLog(db, log.search_id), device="board",
                   space=SpaceSpec(**SPACE), out_dir=out, resume=log.search_id,
                   search_minutes=5)
    assert res.met and res.state.status == "done"
    runs_before = set(saved["runs"])
    for key in first:                          # measured once, in the first part's runs
        assert res.state.results[key].measurement["where"]["run_id"] in runs_before
    later = [r for k, r in res.state.results.items() if k not in first and r.measurement]
    assert later and all(r.measurement["where"]["run_id"] not in runs_before for r in later)
    with ResultStore(db) as store:             # every figure is a row of the farm store
        ok = {(r["run_id"], r["job_key"]) for r in store.results() if r["status"] == "ok"}
    for r in res.state.results.values():
        if r.measurement and r.measurement["ok"]:
            assert (r.measurement["where"]["run_id"], r.measurement["where"]["job_key"]) in ok


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgert", "optimize", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_unreachable_budget_on_the_host(tiny, tmp_path):
    model, npz = tiny
    p = _cli(model, "--eval", npz, "--latency-ms", "0.000001", "--precisions", "fp32,int8",
             "--keep", "1", "--runs", "5", "--db", "f.sqlite", "--out", "o",
             "--progress", "plain", cwd=tmp_path)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "cannot be met" in p.stdout and "closest" in p.stdout
    assert "probes" in p.stderr and "left" in p.stderr          # progress lines
    assert (tmp_path / "o" / "tiny.optimized.tflite").is_file()
    listed = _cli("--list", "--db", "f.sqlite", cwd=tmp_path)
    assert listed.returncode == 0 and "infeasible" in listed.stdout


@pytest.mark.parametrize("args, match", [
    (["--speedup", "0.5x"], "at least 1x"),
    ([], "give a goal"),
    (["--max-drop", "1", "--target", "mnn", "--sparsity", "1.5"], "block sparsities"),
])
def test_cli_bad_goal_is_named(tiny, tmp_path, args, match):
    p = _cli(tiny[0], "--eval", tiny[1], "--db", "f.sqlite", *args, cwd=tmp_path)
    assert p.returncode == 2 and match in p.stderr and "Traceback" not in p.stderr
