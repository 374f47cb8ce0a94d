"""A farm run end to end: host, an SSH board and a simulated phone in parallel,
real runs of ``python -m edgert bench``, the store, the report, the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from device_farm import farm
from device_farm.progress import PlainProgress, ProgressModel
from device_farm.report import write_report
from device_farm.store import ResultStore
from edgert.formatting import fmt_num
from tests.farm.helpers import HOSTILE_NAME, board_spec, board_toml, inventory, phone_spec

pytestmark = [pytest.mark.needs_sshd, pytest.mark.needs_adb]


def _cache_files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        if os.sep + "cache" + os.sep in dirpath + os.sep:
            for n in names:
                p = os.path.join(dirpath, n)
                out[p] = os.stat(p).st_mtime_ns
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, models, sshd, adb_server, phone):
    """One run of 3 models on 3 devices; then the same run again (warm caches)."""
    d = tmp_path_factory.mktemp("full_run")
    cwd = os.getcwd()
    os.chdir(d)  # an injected `touch INJECTED` would land here
    try:
        inv = inventory(board_spec(sshd, "board"), phone_spec(phone, adb_server, "pixel",
                                                               cpu_mask="1"))
        db = str(d / "results.sqlite")
        events = []
        progress = PlainProgress(open(os.devnull, "w"))
        first = farm.bench([models["onnx"], models["mnn"], models["hostile"]], inventory=inv,
                           devices=["host", "board", "pixel"], db=db, runs=15, warmup=2,
                           on_event=lambda e: (events.append(e), progress(e)))
        caches = {"board": _cache_files(os.path.join(sshd.dir, "work-board")),
                  "pixel": _cache_files(os.path.join(phone.root, "data_local_tmp", "edgert"))}
        second = farm.bench([models["onnx"], models["mnn"], models["hostile"]], inventory=inv,
                            devices=["host", "board", "pixel"], db=db, runs=15, warmup=2)
    finally:
        os.chdir(cwd)
    return dict(dir=d, db=db, first=first, second=second, events=events, caches=caches,
                progress=progress.model, phone=phone, sshd=sshd)


def test_every_job_ran_on_every_device(full_run, models):
    s = full_run["first"]
    assert (s.planned, s.ok, s.failed, s.not_run, s.dropped) == (9, 9, 0, 0, {})
    with ResultStore(full_run["db"]) as store:
        rows = store.results(s.run_id)
        devices = {d["device"]: json.loads(d["info_json"]) for d in store.devices(s.run_id)}
    assert len(rows) == 9 and all(r["status"] == "ok" for r in rows)
    assert {(r["device"], r["format"]) for r in rows} == {
        (dev, fmt) for dev in ("host", "board", "pixel") for fmt in ("onnx", "mnn")}
    for r in rows:
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["runs"] == 15 and len(json.loads(r["latencies_json"])) == 15
        assert r["engine_version"].startswith({"onnx": "onnxruntime", "mnn": "MNN"}[r["format"]])
        assert len(r["model_sha256"]) == 64
        assert json.loads(r["settings_json"])["runs"] == 15
        assert r["started_at"] <= r["finished_at"]
    # the phone ran under its CPU mask: edgert saw one CPU, so it used one thread
    assert {r["threads"] for r in rows if r["device"] == "pixel"} == {1}
    assert {r["threads"] for r in rows if r["device"] == "host"} == {min(4, os.cpu_count())}
    pixel = [r for r in rows if r["device"] == "pixel"][0]
    assert json.loads(pixel["device_json"])["info"]["soc"] == "Google GS201"
    state = json.loads(pixel["state_before_json"])
    assert state["cpus"]["cpu7"]["max_khz"] == 2850000
    assert state["thermal"]["thermal_zone0"] == {"type": "BIG", "temp_c": 41.234}
    assert devices["pixel"]["engines"]["mnn"].startswith("MNN")
    assert devices["board"]["cores"] == os.cpu_count()


def test_hostile_file_name_is_data_not_code(full_run, models):
    with ResultStore(full_run["db"]) as store:
        rows = store.results(full_run["first"].run_id)
    assert sum(r["model_name"] == HOSTILE_NAME for r in rows) == 3
    for root in (full_run["dir"], full_run["sshd"].dir, full_run["phone"].root):
        for _, _, names in os.walk(root):
            assert "INJECTED" not in names and "INJECTED2" not in names


def test_second_run_pushes_nothing(full_run):
    s = full_run["second"]
    assert (s.ok, s.failed) == (9, 0)
    after = {"board": _cache_files(os.path.join(full_run["sshd"].dir, "work-board")),
             "pixel": _cache_files(os.path.join(full_run["phone"].root, "data_local_tmp",
                                                "edgert"))}
    for dev in ("board", "pixel"):
        # edgert.zip + 3 models, each written once, untouched by the second run
        assert len(full_run["caches"][dev]) == 4
        assert after[dev] == full_run["caches"][dev]


def test_progress_events(full_run):
    model = full_run["progress"]
    assert {n: (ln.status, ln.done, ln.total, ln.failed) for n, ln in model.lines.items()} == {
        "host": ("done", 3, 3, 0), "board": ("done", 3, 3, 0), "pixel": ("done", 3, 3, 0)}
    kinds = [e["kind"] for e in full_run["events"] if e["device"] == "pixel"]
    assert kinds[:3] == ["device_queued", "device_connecting", "device_ready"]
    assert kinds.count("job_done") == 3 and kinds[-1] == "device_done"
    fresh = ProgressModel()
    for e in full_run["events"]:
        fresh.update(e)
    assert fresh.lines["board"].last.endswith(" ms")


def _overview_rows(md: str):
    """{(model, variant): {device: cell text}} from the Markdown overview table."""
    section = md.split("## Overview\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    head = [h.strip() for h in lines[0].strip("|").split("|")]
    out = {}
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        out[(cells[0], cells[1])] = dict(zip(head[2:], cells[2:]))
    return out


def test_report_cells_are_the_stored_rows(full_run, tmp_path):
    """Every cell of the report is one stored row (one file on one device), traced by its
    job id and sha256; the table, the chart and report.json show the same number."""
    import base64
    import re

    import numpy as np

    run_id = full_run["first"].run_id
    res = write_report(full_run["db"], str(tmp_path / "rep"), run_id)
    with ResultStore(full_run["db"]) as store:
        rows = {r["job_key"]: r for r in store.results(run_id)}
    report = json.load(open(res["json"]))
    cells = {c["job_key"]: c for c in report["cells"]}
    assert set(cells) == set(rows) and len(cells) == 9
    assert len({(c["model"], c["variant"], c["device"]) for c in cells.values()}) == 9
    for key, r in rows.items():
        c = cells[key]
        assert c["id"] == f"{run_id}/{key}"
        assert (c["device"], c["file"], c["sha256"]) == (r["device"], r["model_name"],
                                                         r["model_sha256"])
        assert c["value_ms"] == r["median_ms"] and c["stat"] == "median"
        # every latency is stored, and the stored median is theirs
        lat = json.loads(r["latencies_json"])
        assert len(lat) == r["runs"] == 15 and c["latencies"] == lat
        assert r["median_ms"] == pytest.approx(float(np.median(lat)), rel=1e-12)
        # the chart drew the same number (read back from its artists)
        assert report["drawn"][c["id"]] == pytest.approx(r["median_ms"], rel=1e-12)
        assert c["variant"] == {"onnx": "onnx fp32", "mnn": "mnn fp32"}[r["format"]]
        assert c["model"] == ("tiny" if r["model_name"].startswith("tiny.") else
                              HOSTILE_NAME[:-len(".onnx")])
        assert json.loads(r["variant_json"])["precision_source"] == "file"
    md = open(res["markdown"]).read()
    overview = _overview_rows(md)
    assert set(overview) == {("tiny", "onnx fp32"), ("tiny", "mnn fp32"),
                             (HOSTILE_NAME[:-len(".onnx")], "onnx fp32")}
    for c in cells.values():
        text = overview[(c["model"], c["variant"])][c["device"]]
        # the speed-up is against the same format's fp32 file: each is its own base
        assert text == f"{fmt_num(c['value_ms'])} (base)"
    html = open(res["html"]).read()
    for c in cells.values():
        td = re.search(r"<td[^>]*data-cell='%s'[^>]*>" % re.escape(c["id"]), html).group(0)
        assert f"data-value='{c['value_ms']!r}'" in td and c["sha256"][:16] in td
        assert f"id='job-{c['job_key']}'" in html      # the link of each cell lands
    # self-contained: every image is embedded, and each is a PNG
    srcs = re.findall(r"src='([^']*)'", html)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n" for s in srcs)
    assert [os.path.basename(p) for p in res["plots"]] == [
        "latency_00_it_s_a_model_touch_INJECTED_touch_INJECTED2_.png", "latency_01_tiny.png"]
    assert "Google GS201" in md and "Android 14 (SDK 34)" in md
    assert "it&#x27;s a &quot;model&quot;" in html


def test_cli_devices_lists_and_discovers(tmp_path, sshd, adb_server, phone):
    toml = tmp_path / "devices.toml"
    toml.write_text(board_toml(sshd, tmp_path / "w") + f"""
[[device]]
name = "ghost"
transport = "adb"
serial = "127.0.0.1:1"
adb_server = "{adb_server.address}"
""")
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "devices", "--inventory",
                          str(toml), "--json", "--no-engines"], capture_output=True, text=True,
                         timeout=120, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["board"]["online"] is True
    assert by_name["board"]["info"]["cores"] == os.cpu_count()
    assert by_name["ghost"]["online"] is False and "not reachable" in by_name["ghost"]["error"]
    found = [r for r in rows if r.get("discovered")]
    assert [r["spec"]["address"] for r in found] == [f"{phone.address} @ {adb_server.address}"]


def test_cli_report_and_results(full_run, tmp_path):
    run_id = full_run["first"].run_id
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "report", "--db",
                          full_run["db"], "--run", run_id, "--out", str(tmp_path / "rep"),
                          "--no-plots"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("9 ok, 0 failed, 0 not run -> ")
    assert (tmp_path / "rep" / "report.md").exists() and not list((tmp_path / "rep").glob("*.png"))
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "results", "--db",
                          full_run["db"], "--run", run_id, "--json"], capture_output=True,
                         text=True, timeout=120)
    rows = json.loads(out.stdout)
    assert len(rows) == 9 and {r["run_id"] for r in rows} == {run_id}
    bad = subprocess.run([sys.executable, "-m", "edgert", "farm", "report", "--db",
                          str(tmp_path / "none.sqlite")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "no results database" in bad.stderr
