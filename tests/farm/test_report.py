"""Reports: the run-vs-run comparison (its statistics and its verdicts), baselines,
cells of tools that print no distribution, and a real regression found by the CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from device_farm.report import write_report
from device_farm.report.stats import median_ratio_ci
from device_farm.store import ResultStore


def test_the_interval_holds_its_confidence():
    """Two samples of one distribution: the 95 % interval of the median ratio excludes 1
    about 5 % of the time (binomial over 250 seeded trials), and with the default 5 %
    minimum change it flags (almost) nothing."""
    rng = np.random.default_rng(5)
    outside, beyond_min = 0, 0
    trials = 250
    for i in range(trials):
        a, b = np.exp(rng.normal(0, 0.1, 30)), np.exp(rng.normal(0, 0.1, 30))
        r, lo, hi = median_ratio_ci(a, b, seed=i)
        assert lo <= r <= hi
        outside += lo > 1 or hi < 1
        beyond_min += lo > 1.05 or hi < 1 / 1.05
    assert 0.01 <= outside / trials <= 0.12
    assert beyond_min <= 1


def test_a_scaled_sample_gives_its_scale():
    base = np.exp(np.random.default_rng(2).normal(0, 0.1, 60))
    r, lo, hi = median_ratio_ci(base, base * 1.2)
    assert r == pytest.approx(1.2, rel=1e-12)      # the medians scale exactly
    assert 1.05 < lo < 1.2 < hi < 1.4


def _row(run, key, device, name, latencies=None, mean=None, status="ok", sha=None, path=None):
    """A result row as the scheduler writes it (variant fields included)."""
    from device_farm.variants import Variant

    v = Variant(model="m", format="onnx", precision="fp32", precision_source="file",
                file_precision="fp32")
    lat = [float(x) for x in (latencies if latencies is not None else [])]
    return dict(run_id=run, job_key=key, device=device, status=status, model_name=name,
                model_path=path or f"/models/{name}", model_sha256=sha or "a" * 64,
                format="onnx", precision="auto", runs=len(lat) or 10,
                median_ms=float(np.median(lat)) if lat else None,
                mean_ms=float(np.mean(lat)) if lat else mean,
                min_ms=float(min(lat)) if lat else (mean * 0.9 if mean else None),
                max_ms=float(max(lat)) if lat else (mean * 1.2 if mean else None),
                latencies_json=json.dumps(lat), variant_json=json.dumps(v.to_dict()),
                variant="onnx fp32", model_group="m", error=None if status == "ok" else "boom")


def _store_with(tmp_path, rows):
    db = str(tmp_path / "r.sqlite")
    with ResultStore(db) as store:
        for run in sorted({r["run_id"] for r in rows}):
            store.start_run(run, "h", "0", [], {}, [])
        for r in rows:
            store.add_result(r)
    return db


def test_verdicts_of_a_comparison(tmp_path):
    rng = np.random.default_rng(9)
    base = {d: np.exp(rng.normal(np.log(10), 0.05, 40)) for d in "abcde"}
    new = {"a": base["a"] * 1.30,                                   # clearly slower
           "b": base["b"] * 0.70,                                   # clearly faster
           "c": np.exp(rng.normal(np.log(10), 0.05, 40)),           # the same
           "d": base["d"] * 1.03}                                   # slower, but < 5 %
    rows = [_row("r1", f"k{d}", d, "m.onnx", base[d]) for d in "abcd"]
    rows += [_row("r2", f"n{d}", d, "m.onnx", new[d]) for d in "abcd"]
    rows += [_row("r1", "ke", "e", "m.onnx", mean=5.0), _row("r2", "ne", "e", "m.onnx",
                                                             mean=6.0)]
    rows += [_row("r1", "kf", "f", "m.onnx", base["a"]),
             _row("r2", "nf", "f", "m.onnx", status="error")]
    db = _store_with(tmp_path, rows)
    res = write_report(db, str(tmp_path / "rep"), "r2", compare_to="r1")
    changes = {c["device"]: c for c in json.load(open(res["json"]))["comparison"]["changes"]}
    assert {d: c["verdict"] for d, c in changes.items()} == {
        "a": "regression", "b": "improvement", "c": "no clear change", "d": "no clear change",
        "e": "not testable", "f": "not testable"}
    assert changes["a"]["ratio"] == pytest.approx(1.3, rel=1e-12)
    assert changes["a"]["lo"] > 1.05 and changes["b"]["hi"] < 1 / 1.05
    assert changes["d"]["lo"] < 1.05
    assert changes["e"]["ratio"] == pytest.approx(6.0 / 5.0) and changes["e"]["lo"] is None
    assert "only its summary" in changes["e"]["note"]
    assert (res["regressions"], res["improvements"]) == (1, 1)
    md = open(res["markdown"]).read()
    line = [ln for ln in md.splitlines() if ln.startswith("| m | onnx fp32 | a |")][0]
    assert "30.0 % slower (95 % CI +" in line and "| regression |" in line
    # a native tool's cell: no distribution, its mean drawn as a point, said in the table
    report = json.load(open(res["json"]))
    cell = [c for c in report["cells"] if c["device"] == "e"][0]
    assert (cell["stat"], cell["value_ms"], cell["latencies"]) == ("mean", 6.0, [])
    assert report["drawn"][cell["id"]] == 6.0
    overview = md.split("## Overview\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in overview.splitlines() if ln.startswith("| ")]
    assert len(lines) == 2      # the header and one row: model m, variant onnx fp32
    cols = dict(zip(lines[0].strip("| ").split(" | "), lines[1].strip("| ").split(" | ")))
    assert (cols["e"], cols["f"]) == ("~6 (base)", "error")


def test_baselines(tmp_path):
    rng = np.random.default_rng(4)
    slow, fast = np.exp(rng.normal(np.log(20), 0.02, 20)), np.exp(rng.normal(np.log(5), 0.02,
                                                                                20))
    db = _store_with(tmp_path, [_row("r", "k1", "phone", "m.onnx", slow),
                                _row("r", "k2", "board", "m.onnx", fast)])
    res = write_report(db, str(tmp_path / "rep"), "r", baseline="device:phone")
    cells = {c["device"]: c for c in json.load(open(res["json"]))["cells"]}
    assert cells["board"]["speedup"] == pytest.approx(np.median(slow) / np.median(fast))
    assert cells["phone"]["speedup"] == 1.0 and cells["board"]["baseline_job"] == "r/k1"
    from edgert.errors import EdgertError

    with pytest.raises(EdgertError, match="baseline 'phone'"):
        write_report(db, str(tmp_path / "rep"), "r", baseline="phone")


def test_one_cell_is_one_file(tmp_path):
    """Two files of one name, variant and device (two folders): two cells, labelled."""
    lat = [1.0, 1.1, 1.2]
    db = _store_with(tmp_path, [
        _row("r", "k1", "host", "m.onnx", lat, sha="a" * 64, path="/x/a/m.onnx"),
        _row("r", "k2", "host", "m.onnx", lat, sha="b" * 64, path="/x/b/m.onnx")])
    cells = json.load(open(write_report(db, str(tmp_path / "rep"), "r")["json"]))["cells"]
    assert sorted(c["variant"] for c in cells) == ["onnx fp32 [a/m.onnx]",
                                                    "onnx fp32 [b/m.onnx]"]


def _matmul(path: str, n: int, seed: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(
        np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, n])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(m, path)


def test_a_real_regression_is_flagged_by_the_cli(tmp_path):
    """Run 1 benchmarks m.onnx; run 2 a new m.onnx with 8x the work (64x64 -> 512x512
    MatMul on 64 rows, ~500x the MACs): the comparison flags it, names its size, notes
    that the file changed, and --fail-on-regression exits 1."""
    from device_farm import farm
    from device_farm.inventory import Inventory, host_device

    _matmul(str(tmp_path / "v1" / "m.onnx"), 64, 1)
    _matmul(str(tmp_path / "v2" / "m.onnx"), 512, 2)
    db = str(tmp_path / "r.sqlite")
    inv = Inventory([host_device()])
    for run, folder in (("before", "v1"), ("after", "v2")):
        s = farm.bench([str(tmp_path / folder / "m.onnx")], inventory=inv, devices=["host"],
                       db=db, runs=25, warmup=2, threads=1, run_id=run)
        assert s.complete
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "report", "--db", db,
                          "--run", "after", "--compare", "before", "--out",
                          str(tmp_path / "rep"), "--fail-on-regression"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    assert "compared with before: 1 regression(s), 0 improvement(s)" in out.stdout
    change = json.load(open(tmp_path / "rep" / "report.json"))["comparison"]["changes"][0]
    assert change["verdict"] == "regression" and change["lo"] > 5
    assert change["note"] == "the file changed" and not change["same_file"]
    html = open(tmp_path / "rep" / "report.html").read()
    assert "Compared with run before" in html and "class='reg'" in html
    shutil.rmtree(tmp_path / "rep")
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "report", "--db", db,
                          "--run", "after", "--compare", "before", "--out",
                          str(tmp_path / "rep")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0                 # without the flag a report is not a failure


def test_console_overview_explains_only_the_marks_it_shows(tmp_path, capsys):
    """The console legend names "~ mean" only when a cell is a tool's mean (a host-only
    run has medians, and the legend said otherwise)."""
    from device_farm.report.compose import print_overview

    medians = _store_with(tmp_path, [_row("r1", "k1", "host", "net", [5.0, 5.1, 5.2])])
    print_overview(medians, "r1")
    legend = capsys.readouterr().out.strip().splitlines()[-1]
    assert legend.startswith("median latency in ms, and the speed-up against")
    (tmp_path / "b").mkdir()
    means = _store_with(tmp_path / "b", [_row("r1", "k1", "phone", "net", mean=6.0)])
    print_overview(means, "r1")
    legend = capsys.readouterr().out.strip().splitlines()[-1]
    assert legend.startswith("median latency in ms (~ mean: the tool prints no median), and")
