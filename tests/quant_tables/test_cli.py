"""``edgert quant-table ...`` and ``edgert calibrate``, run through the real CLI entry."""
from __future__ import annotations

import json

import numpy as np

from edgert.cli import main
from quant_tables import QuantTable


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_calibrate_then_show_and_validate(small_onnx, cal_data, tmp_path, capsys):
    np.save(tmp_path / "cal.npy", cal_data)
    out = str(tmp_path / "t.json")
    assert main(["calibrate", small_onnx, "--data", str(tmp_path / "cal.npy"), "--method",
                 "percentile", "--percentile", "99.9", "-o", out, "--json"]) == 0
    summary = _json(capsys)
    assert summary["method"] == "percentile(99.9)" and summary["weights"] == 3
    t = QuantTable.load(out)
    assert len(t.activations) == summary["activations"] >= 6
    assert main(["quant-table", "show", out, "--json"]) == 0
    assert _json(capsys)["per_channel_weights"] == 3
    assert main(["quant-table", "show", out]) == 0
    text = capsys.readouterr().out
    assert "quantization table" in text and "percentile(99.9)" in text
    assert main(["quant-table", "validate", out, "--model", small_onnx, "--json"]) == 0
    rep = _json(capsys)
    assert rep["valid"] and rep["unknown"] == [] and rep["matched_weights"] == 3


def test_validate_reports_unknown_names_and_strict_fails(small_onnx, tmp_path, capsys):
    t = QuantTable.from_dict({"format": "edgert.quant-table", "version": 1, "weights": {},
                              "activations": {"x": {"scale": 0.1, "zero_point": 0, "dtype": "int8"},
                                              "ghost": {"scale": 0.1, "zero_point": 0, "dtype": "int8"}}})
    path = str(tmp_path / "t.json")
    t.save(path)
    assert main(["quant-table", "validate", path, "--model", small_onnx]) == 0
    assert "1 name(s) not in the model: ghost" in capsys.readouterr().out
    assert main(["quant-table", "validate", path, "--model", small_onnx, "--strict"]) == 1


def test_invalid_table_exits_2_with_the_tensor_named(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "edgert.quant-table", "version": 1, "weights": {},
                                "activations": {"conv_out": {"scale": 0.1, "zero_point": 999,
                                                             "dtype": "int8"}}}))
    assert main(["quant-table", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "activation 'conv_out': zero_point 999 is out of range for int8" in err


def test_import_qdq_and_export(qdq_onnx, tmp_path, capsys):
    out = str(tmp_path / "t.json")
    flt = str(tmp_path / "float.onnx")
    assert main(["quant-table", "import", qdq_onnx, "--from", "qdq", "-o", out,
                 "--float-model", flt, "--json"]) == 0
    rep = _json(capsys)
    assert rep["float_model"] == flt and rep["weights"] == 3 and rep["unknown"] == []
    assert any("restored the ReLU" in n for n in rep["notes"])
    params = str(tmp_path / "params.json")
    assert main(["quant-table", "export", out, "--to", "mnn", "--model", flt, "-o", params,
                 "--json"]) == 0
    assert len(_json(capsys)["layers"]) == 3
    qdq = str(tmp_path / "sim.onnx")
    assert main(["quant-table", "export", out, "--to", "qdq", "--model", flt, "-o", qdq]) == 0
    import onnx
    ops = [n.op_type for n in onnx.load(qdq).graph.node]
    assert ops.count("QuantizeLinear") == len(QuantTable.load(out).activations) + 3


def test_import_tensorrt_and_sparsity_show(tmp_path, capsys):
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\nx: 3c010204\n")
    out = str(tmp_path / "t.json")
    assert main(["quant-table", "import", str(cache), "--from", "tensorrt", "-o", out]) == 0
    assert "1 activations" in capsys.readouterr().out
    s = tmp_path / "s.json"
    s.write_text(json.dumps({"format": "edgert.sparsity-table", "version": 1, "weights": {
        "fc.weight": {"pattern": "block", "block": [1, 4], "measured": 0.8, "mask_source": "zeros"}}}))
    assert main(["quant-table", "show", str(s)]) == 0
    assert "1x4 on axes [0, 1]" in capsys.readouterr().out


def test_missing_action(capsys):
    assert main(["quant-table"]) == 2
    assert "needs an action" in capsys.readouterr().err


def test_convert_int8_from_the_command_line(small_onnx, cal_data, tmp_path, capsys):
    np.save(tmp_path / "cal.npy", cal_data[:8])
    out = tmp_path / "out"
    assert main(["convert", small_onnx, "--to", "tflite,mnn", "--precision", "int8",
                 "--calibration-data", str(tmp_path / "cal.npy"), "--out", str(out),
                 "--no-isolated-check", "--json"]) == 0
    rep = _json(capsys)
    assert rep["ok"] and {t["target"] for t in rep["targets"]} == {"tflite", "mnn"}
    table = out / "small.int8.quant.json"
    assert QuantTable.load(table).provenance.producer == "calibrate"
    assert main(["convert", small_onnx, "--to", "tflite", "--precision", "int8", "--quant-table",
                 str(table), "--io-dtype", "int8", "--out", str(tmp_path / "io8"), "--name", "io8",
                 "--no-isolated-check", "--json"]) == 0
    t = _json(capsys)["targets"][0]
    assert t["details"]["int8"]["quantize_ops"] == 0 and t["details"]["int8"]["dequantize_ops"] == 0
    assert main(["quant-debug", str(out / "small.optimized.onnx"), "--table", str(table),
                 "--target", "tflite", "--top", "2", "--json"]) == 0
    dbg = _json(capsys)
    assert len(dbg["worst"]) == 2 and dbg["layers"][-1]["cosine"] > 0.99
