"""What a benchmarked file is: precision from its conversion report or its own bytes
(never its name), files of one conversion under one model, and a farm report whose
cells and speed-ups follow from that."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from device_farm.file_facts import read_facts
from device_farm.variants import describe_file, model_name

PRECISIONS = ("fp32", "fp16", "int8_weights", "int8")


def _conv_net(path: str) -> None:
    """Conv 3->8 (3x3) + Relu + Flatten + Gemm -> 4: every backend quantizes it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.3, n)
             for n, s in (("w", (8, 3, 3, 3)), ("b", (8,)), ("fw", (4, 8 * 6 * 6)),
                          ("fb", (4,)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "net", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


@pytest.fixture(scope="module")
def conversions(tmp_path_factory):
    """net at every precision, both formats, into one folder: each convert() rewrites
    net.report.json, so at the end it lists only the int8 files."""
    from converters import convert

    d = tmp_path_factory.mktemp("conversions")
    src = str(d / "src.onnx")
    _conv_net(src)
    out = d / "out"
    calib = {"x": np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32)}
    files = {}
    for p in PRECISIONS:
        rep = convert(src, targets=("tflite", "mnn"), out_dir=str(out), name="net", precision=p,
                      calibration_data=calib if p == "int8" else None)
        files.update({(t.target, p): t.path for t in rep.targets})
    files[("onnx", "fp32")] = rep.optimized_path
    return {"dir": out, "files": files}


def test_precision_from_the_report_or_the_bytes(conversions):
    for (fmt, precision), path in conversions["files"].items():
        v = describe_file(path, fmt, os.path.getsize(path))
        facts = read_facts(path, fmt)
        assert v.model == "net" and v.format == fmt
        listed = precision == "int8"         # the targets the last report lists
        if fmt == "onnx":   # the report lists the optimized graph, with no precision
            assert (v.precision, v.precision_source) == ("fp32", "file")
            assert v.report == str(conversions["dir"] / "net.report.json")
        elif listed and precision == facts.precision:
            assert (v.precision, v.precision_source) == (precision, "report"), path
        elif listed:   # the file disagrees with its report: the bytes win, the label says so
            assert v.precision == facts.precision
            assert v.label() == f"{fmt} {facts.precision} (report says {precision})"
        else:          # the report was rewritten by a later conversion: the bytes decide
            assert (v.precision, v.precision_source, v.report) == (precision, "file", None)
        if fmt != "onnx":
            assert facts.precision == precision, (path, facts.why)
        assert v.label() == f"{fmt} {v.precision}" or v.report_precision


def test_a_file_name_never_decides(conversions, tmp_path):
    fp16 = conversions["files"][("tflite", "fp16")]
    liar = tmp_path / "net.int8.tflite"
    shutil.copyfile(fp16, liar)
    v = describe_file(str(liar), "tflite", os.path.getsize(liar))
    assert (v.label(), v.precision_source) == ("tflite fp16", "file")
    assert "float16" in v.evidence


def test_a_report_is_believed_only_for_the_file_it_lists(conversions, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    fp16 = conversions["files"][("tflite", "fp16")]
    shutil.copyfile(fp16, folder / "m.tflite")
    size = os.path.getsize(fp16)
    report = {"name": "mine", "targets": [{"target": "tflite", "precision": "int8",
                                           "path": "elsewhere/m.tflite", "size_bytes": size}],
              "pruning": {"kept": 0.7}}
    (folder / "m.report.json").write_text(json.dumps(report))
    v = describe_file(str(folder / "m.tflite"), "tflite", size)
    assert v.model == "mine" and v.pruned and v.report == str(folder / "m.report.json")
    assert v.label() == "tflite fp16 pruned (report says int8)"
    assert v.evidence.startswith("the conversion report says int8, but the file holds fp16")
    # the same report with another size describes another file: not believed
    report["targets"][0]["size_bytes"] = size + 1
    (folder / "m.report.json").write_text(json.dumps(report))
    v = describe_file(str(folder / "m.tflite"), "tflite", size)
    assert (v.model, v.label(), v.report) == ("m", "tflite fp16", None)
    # a report's per-layer sparsity makes the variant sparse
    report["targets"][0].update(size_bytes=size, precision="fp16",
                                details={"sparsity": {"layers": [{"runs": "dense"},
                                                                 {"runs": "sparse"}]}})
    (folder / "m.report.json").write_text(json.dumps(report))
    assert describe_file(str(folder / "m.tflite"), "tflite", size).label() == \
        "tflite fp16 pruned sparse"
    (folder / "m.report.json").write_text("{not json")       # unreadable: the bytes decide
    assert describe_file(str(folder / "m.tflite"), "tflite", size).label() == "tflite fp16"


def test_onnx_precisions_from_the_bytes(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w16 = numpy_helper.from_array(np.ones((64, 32), np.float16), "W")
    shape = numpy_helper.from_array(np.array([1, 32], np.int64), "shape")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"]),
                           helper.make_node("Reshape", ["y", "shape"], ["z"])], "h",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 64])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT16, [1, 32])],
                          [w16, shape])
    onnx.save(helper.make_model(g), str(tmp_path / "h.onnx"))
    assert read_facts(str(tmp_path / "h.onnx"), "onnx").precision == "fp16"
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z0")
    q = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z0"], ["q"]),
                           helper.make_node("DequantizeLinear", ["q", "s", "z0"], ["y"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                          [scale, zero])
    onnx.save(helper.make_model(q), str(tmp_path / "q.onnx"))
    assert read_facts(str(tmp_path / "q.onnx"), "onnx").precision == "int8"
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07\x3a\xff\xff\xff\xff\x0f")
    junk = read_facts(str(tmp_path / "junk.onnx"), "onnx")
    assert junk.precision == "unknown" and "could not read" in junk.why


@pytest.mark.parametrize("name, model", [
    ("x.optimized.onnx", "x"), ("x.tflite", "x"), ("x.fp16.tflite", "x"),
    ("x.int8.mnn", "x"), ("x.int8_weights.mnn", "x"), ("x.pruned.onnx", "x"),
    ("x_int8.tflite", "x"), ("mobilenet.v3.tflite", "mobilenet.v3"), ("int8.tflite", "int8")])
def test_files_of_one_conversion_share_a_model(name, model):
    assert model_name(name) == model


def test_a_farm_run_of_every_precision(conversions, tmp_path):
    """All files of the conversion (optimized ONNX included) are one model; each cell is
    one file; speed-ups are the baseline's median over the cell's, from the stored rows."""
    from device_farm import farm
    from device_farm.inventory import Inventory, host_device
    from device_farm.report import write_report
    from device_farm.store import ResultStore

    files = sorted(conversions["files"].values())
    db = str(tmp_path / "r.sqlite")
    s = farm.bench(files, inventory=Inventory([host_device()]), devices=["host"], db=db,
                   runs=8, warmup=1, threads=1)
    assert (s.planned, s.ok) == (len(files), len(files))
    with ResultStore(db) as store:
        rows = {r["model_name"]: r for r in store.results(s.run_id)}
    res = write_report(db, str(tmp_path / "rep"), s.run_id)
    cells = {c["file"]: c for c in json.load(open(res["json"]))["cells"]}
    assert {c["model"] for c in cells.values()} == {"net"} and len(res["plots"]) == 1
    assert len({c["variant"] for c in cells.values()}) == len(files)
    for fmt in ("tflite", "mnn"):
        base = rows[f"net.{fmt}"]["median_ms"]
        for p in PRECISIONS:
            name = f"net.{fmt}" if p == "fp32" else f"net.{p}.{fmt}"
            c = cells[name]
            assert c["speedup"] == pytest.approx(base / rows[name]["median_ms"], rel=1e-12)
            assert c["baseline_job"] == f"{s.run_id}/{rows[f'net.{fmt}']['job_key']}"
    res = write_report(db, str(tmp_path / "rep2"), s.run_id, baseline="variant:onnx fp32")
    onnx_ms = rows["net.optimized.onnx"]["median_ms"]
    for c in json.load(open(res["json"]))["cells"]:
        assert c["speedup"] == pytest.approx(onnx_ms / c["value_ms"], rel=1e-12)
