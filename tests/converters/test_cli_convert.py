"""``edgert convert`` as users run it: exit codes, JSON report, files, error messages."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tests.converters import onnx_builders as ob

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _edgert(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "edgert", "convert", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


def test_zoo_model_to_mnn_with_json_report(tmp_path):
    out = tmp_path / "out"
    proc = _edgert("zoo:dynamic_batch_cnn", "--to", "mnn", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["source"]["exporter"] == "dynamo"
    [target] = report["targets"]
    assert target["verification"]["passed"]
    assert target["verification"]["outputs"][0]["cosine"] >= 0.99999
    assert (out / "dynamic_batch_cnn.mnn").exists()
    assert (out / "dynamic_batch_cnn.optimized.onnx").exists()
    on_disk = json.loads((out / "dynamic_batch_cnn.report.json").read_text())
    assert on_disk["targets"][0]["size_bytes"] == (out / "dynamic_batch_cnn.mnn").stat().st_size


def test_failed_verification_exits_1_and_says_why(conv_onnx, tmp_path):
    proc = _edgert(str(conv_onnx), "--out", str(tmp_path), "--threshold", "min_cosine=1.5",
                   "--threshold", "atol=0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verification FAILED" in proc.stdout and "cosine" in proc.stdout
    assert (tmp_path / "padconv.report.json").exists()


def test_unknown_input_shape_name_exits_2(conv_onnx, tmp_path):
    proc = _edgert(str(conv_onnx), "--out", str(tmp_path), "--input-shape", "image=1x3x8x8")
    assert proc.returncode == 2
    assert "unknown input(s) ['image']; model inputs: ['x']" in proc.stderr


def test_unsupported_op_exits_2_naming_node_op_and_target(tmp_path):
    path = tmp_path / "bernoulli.onnx"
    onnx.save(ob.single_op("Bernoulli"), str(path))
    proc = _edgert(str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "mnn: node 'my_bernoulli' has op 'Bernoulli', which mnn cannot take" in proc.stderr


def test_torch_file_without_shapes_asks_for_input_shape(tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch\nnet = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n")
    proc = _edgert(f"{tmp_path / 'net.py'}:net", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "--input-shape" in proc.stderr
    proc = _edgert(f"{tmp_path / 'net.py'}:net", "--out", str(tmp_path / "o"),
                   "--input-shape", "input=1x3x16x16", "--exporter", "torchscript",
                   "--no-isolated-check")
    assert proc.returncode == 0, proc.stderr
    assert "verification PASSED" in proc.stdout
    assert (tmp_path / "o" / "net.mnn").exists()


def test_one_target_failing_keeps_the_others_results(tmp_path):
    """NonZero (a data-dependent output shape): MNN converts it, TFLite cannot; the MNN
    file and its verification are still written and shown, the TFLite error names the
    node."""
    from onnx import TensorProto as T
    from onnx import helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("NonZero", ["r"], ["y"], name="branch")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", T.INT64, [2, None])])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    proc = _edgert(str(path), "--to", "mnn,tflite", "--out", str(tmp_path / "o"),
                   "--no-isolated-check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "tflite: node 'branch' has op 'NonZero'" in proc.stderr
    assert "conversion FAILED for tflite" in proc.stdout
    assert (tmp_path / "o" / "if.mnn").exists()
    report = json.loads((tmp_path / "o" / "if.report.json").read_text())
    mnn, tfl = report["targets"]
    assert mnn["ok"] and mnn["verification"]["passed"] and not tfl["ok"]
    assert tfl["error_type"] == "UnsupportedOpError"


def test_a_traced_qat_model_fails_with_a_hint_and_keeps_stdout_clean(tmp_path):
    """A QAT model saved with torch.jit.trace: its fake-quants are graph ops torch.onnx
    cannot export. torch's C++ log printed the whole TorchScript graph on fd 1 (hundreds of
    lines, corrupting --json); the error now says to pass the QAT model itself."""
    import warnings

    import torch

    from tests.quant_tables.test_qat_torch import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qat = prepare("qnnpack").eval()
        torch.jit.trace(qat, (torch.randn(1, 1, 8, 8),)).save(str(tmp_path / "qat.pt"))
    r = _edgert(str(tmp_path / "qat.pt"), "--to", "tflite", "--out", str(tmp_path / "out"),
                "--input-shape", "x=1x1x8x8", "--json")
    assert r.returncode == 2, r.stderr
    assert "Torch IR graph" not in r.stdout + r.stderr
    assert "fake_quant" in r.stderr and "Pass the QAT model itself" in r.stderr
    if r.stdout.strip():
        json.loads(r.stdout)          # whatever --json prints is JSON
