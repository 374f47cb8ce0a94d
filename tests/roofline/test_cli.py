"""``edgert roofline`` and ``edgert roofs`` end to end, in-process through the CLI's main."""
from __future__ import annotations

import json

import pytest

from converters.analysis import analyze
from edgert.cli import main


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_roofline_json_on_a_catalog_device(capsys, small_cnn, tmp_path):
    out = tmp_path / "plot.png"
    d = run_json(capsys, ["roofline", small_cnn, "--device", "raspberry-pi-5", "--latency-ms",
                          "2.0", "--json", "--plot", str(out)])
    a = analyze(small_cnn)
    t = d["totals"]
    assert (t["flops"], t["macs"], len(d["layers"])) == (a.total_flops, a.total_macs,
                                                        len(a.layers))
    assert t["bytes"] == a.traffic_bytes("fp32")
    assert d["peak_gflops"] == 153.6 and d["bandwidth_gbps"] == 17.1
    assert t["efficiency"] == pytest.approx(t["bound_ms"] / 2.0)
    # BN folded by the exporter, ReLU and ReLU6 (Clip) fused into their convs
    assert [l["op_type"] for l in d["layers"]] == ["Conv+Relu", "Conv+Clip",
                                                   "GlobalAveragePool", "Gemm"]
    assert sum(l["share"] for l in d["layers"]) == pytest.approx(1.0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "plot.svg").read_bytes()[:2000]
    assert d["plots"] == [str(out), str(tmp_path / "plot.svg")]


def test_latency_from_a_bench_json(capsys, small_cnn, tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"runs": 30, "median_ms": 4.0, "engine": "mnn",
                                 "engine_version": "MNN 3.6.1", "model": "small_cnn.mnn"}))
    d = run_json(capsys, ["roofline", small_cnn, "--device", "jetson-nano", "--precision",
                          "fp16", "--latency-from", str(bench), "--json"])
    t = d["totals"]
    assert t["latency_ms"] == 4.0 and "MNN 3.6.1" in t["latency_source"]
    assert d["peak_gflops"] == 472.0
    assert t["bytes"] == analyze(small_cnn).traffic_bytes("fp16")


def test_host_measures_roofs_and_latency(capsys, small_cnn):
    d = run_json(capsys, ["roofline", small_cnn, "--json"])
    t = d["totals"]
    assert d["device"]["measured"] and d["peak_gflops"] > 0
    assert t["latency_ms"] > 0 and "onnxruntime" in t["latency_source"]
    assert 0 < t["efficiency"] == pytest.approx(t["bound_ms"] / t["latency_ms"])


def test_table_output(capsys, small_cnn):
    assert main(["roofline", small_cnn, "--device", "raspberry-pi-4", "--no-measure"]) == 0
    text = capsys.readouterr().out
    assert "roofline bound ms" in text and "Conv" in text and "ridge" in text


def test_bad_inputs_are_clear_errors(capsys, small_cnn, tmp_path):
    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\x00" * 32)
    assert main(["roofline", str(tfl), "--device", "raspberry-pi-4"]) == 2
    assert "roofline analyses ONNX graphs, this is tflite" in capsys.readouterr().err
    assert main(["roofline", small_cnn, "--device", "nope"]) == 2
    assert "unknown device 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:      # refused while parsing, before any work
        main(["roofline", small_cnn, "--device", "raspberry-pi-4", "--shape", "x"])
    assert stop.value.code == 2 and "write NAME=1x3x224x224" in capsys.readouterr().err
    bad = tmp_path / "bench.json"
    bad.write_text("{}")
    assert main(["roofline", small_cnn, "--device", "raspberry-pi-4",
                 "--latency-from", str(bad)]) == 2
    assert "no result with a positive median_ms" in capsys.readouterr().err


def test_roofs_json_feeds_roofline(capsys, small_cnn, tmp_path):
    roofs = run_json(capsys, ["roofs", "--json", "--seconds", "0.4", "--array-mb", "16",
                              "--fp32-only"])
    assert roofs["peak_gflops"]["fp32"]["value"] > 0 and roofs["peak_gflops"]["int8"] is None
    path = tmp_path / "myboard.json"
    path.write_text(json.dumps(roofs))
    d = run_json(capsys, ["roofline", small_cnn, "--device", str(path), "--latency-ms", "1",
                          "--json"])
    assert d["peak_gflops"] == roofs["peak_gflops"]["fp32"]["value"]
    assert d["bandwidth_gbps"] == roofs["bandwidth_gbps"]["value"]


def test_roofs_lists_devices(capsys):
    d = run_json(capsys, ["roofs", "--devices", "--json"])
    pi5 = next(x for x in d if x["name"] == "raspberry-pi-5")
    assert pi5["bandwidth_gbps"] == 17.1 and "product brief" in pi5["sources"]["bandwidth"]
