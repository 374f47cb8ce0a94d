"""MNN compression params from a table, checked with MNN's own converter and runtime."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from converters.verify import int8_lsb_bound
from quant_tables.errors import TableError
from quant_tables import ActivationQuant, WeightQuant
from quant_tables.exporters.mnn_compress import (GRAPH_OUTPUT_SUFFIX, mnn_compression_params,
                                                  scales_array, write_mnn_compression_params)
from quant_tables.exporters.qdq_onnx import insert_qdq
from quant_tables.producers.calibrate import calibrate

from .conftest import export, ort_run
from .int8_bounds import depths


def conv_net():
    import torch
    import torch.nn as nn

    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU6(),
                         nn.Conv2d(8, 4, 3, padding=1)).eval()


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    import torch
    return export(conv_net(), str(tmp_path_factory.mktemp("mnn") / "conv.onnx"),
                  torch.zeros(1, 1, 8, 8))


def _mnnconvert(onnx_path: str, out: str, params: str = "") -> None:
    import _tools
    from edgert.native_output import capture_native_output

    argv = ["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", out,
            "--bizCode", "edgert"]
    if params:
        argv += ["--compressionParamsFile", params]
    with capture_native_output() as cap:
        _tools.mnnconvert(argv)
    assert os.path.exists(out), cap.text


def test_layers_are_named_after_mnn_fusion(conv_onnx, cal_data):
    import onnx

    t = calibrate(conv_onnx, cal_data, "minmax")
    doc, rep = mnn_compression_params(t, conv_onnx)
    assert rep.symmetric == []              # conv -> relu -> conv chains keep their zero points
    proto = onnx.load(conv_onnx)
    relu_out = [n.output[0] for n in proto.graph.node if n.op_type == "Relu"][0]
    clip_out = [n.output[0] for n in proto.graph.node if n.op_type == "Clip"][0]
    assert rep.layers == [relu_out, clip_out, "y"] and rep.skipped == []
    layers = doc["algo"][0]["quantParams"]["layer"]
    assert [l["output"][0]["name"] for l in layers] == [relu_out, clip_out, "y",
                                                        "y" + GRAPH_OUTPUT_SUFFIX]
    first = layers[0]
    a = t.activations[relu_out]
    assert first["output"][0]["scales"] == [a.scale]
    assert first["output"][0]["zeroPoint"] == a.zero_point == -128
    assert first["input"][0]["name"] == "x"
    assert len(first["weight"][0]["scales"]) == 8
    assert (first["weight"][0]["clampMin"], first["weight"][0]["clampMax"]) == (-127, 127)
    assert doc["algo"][0]["type"] == "QUANTIZE"


def test_uint8_is_shifted_and_per_tensor_weights_expanded(conv_onnx, cal_data):
    t = calibrate(conv_onnx, cal_data, "minmax")
    name = next(iter(t.weights))
    t.weights[name] = WeightQuant(0.01, 0, dtype="int8")
    t.activations["x"] = ActivationQuant(0.02, 130, "uint8", quant_min=0, quant_max=255)
    doc, _ = mnn_compression_params(t, conv_onnx)
    first = doc["algo"][0]["quantParams"]["layer"][0]
    assert first["input"][0]["zeroPoint"] == 2
    assert (first["input"][0]["clampMin"], first["input"][0]["clampMax"]) == (-128, 127)
    assert first["weight"][0]["scales"] == [0.01] * 8


def test_what_cannot_be_int8_is_reported(conv_onnx, cal_data):
    t = calibrate(conv_onnx, cal_data, "minmax")
    names = list(t.weights)
    t.weights[names[1]] = WeightQuant([0.01] * 8, 3, axis=0)
    del t.activations["y"]
    doc, rep = mnn_compression_params(t, conv_onnx)
    reasons = dict(rep.skipped)
    assert len(rep.layers) == 1 and len(rep.skipped) == 2
    assert any("asymmetric weights" in r for r in reasons.values())
    assert any("table lacks output y" in r for r in reasons.values())
    with pytest.raises(TableError, match="ends in .json"):
        write_mnn_compression_params(t, conv_onnx, "params.txt")


def test_mnn_int8_model_matches_the_simulation(conv_onnx, cal_data, tmp_path):
    """MNN's converter takes the params; its int8 kernels reproduce the table's QDQ simulation."""
    import edgert

    t = calibrate(conv_onnx, cal_data, "minmax")
    params = str(tmp_path / "params.json")
    write_mnn_compression_params(t, conv_onnx, params)
    _mnnconvert(conv_onnx, str(tmp_path / "int8.mnn"), params)
    _mnnconvert(conv_onnx, str(tmp_path / "fp32.mnn"))
    assert os.path.getsize(tmp_path / "int8.mnn") < 0.8 * os.path.getsize(tmp_path / "fp32.mnn")
    qdq, _ = insert_qdq(conv_onnx, t)
    x = cal_data[:1]
    sim = ort_run(qdq, x)
    flt = ort_run(conv_onnx, x)
    sess = edgert.load(str(tmp_path / "int8.mnn"), check="structure")
    got = sess.run({"x": x})["y"]
    step = t.activations["y"].scale
    # the int8 kernels, within int8_lsb_bound steps of the simulation (one conv: 2)
    assert np.abs(got - sim).max() <= int8_lsb_bound(depths(conv_onnx)["y"]) * step
    assert np.abs(got - flt).max() > step / 4               # and they really are int8
    assert json.load(open(params))["algo"][0]["quantParams"]["layer"][0]["method"] == "QAT"
    assert scales_array(json.load(open(params)), "y").shape == (4,)


def residual_net():
    import torch
    import torch.nn as nn

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.c3 = (nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1),
                                         nn.Conv2d(8, 8, 3, padding=1))
            self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            a = torch.relu(self.c1(x))
            b = torch.relu(self.c2(a) + a)                 # residual Add, standalone ReLU
            c = torch.relu(self.c3(b))
            return self.fc(torch.flatten(self.pool(c), 1))
    torch.manual_seed(0)
    return Res().eval()


def test_mnn_gets_symmetric_tensors_where_its_x86_kernels_need_them(tmp_path, cal_data):
    """Asymmetric int8 through MNN's int8 Add/ReLU/MaxPool is wrong on x86; only those
    tensors become symmetric, conv-only chains keep the table's parameters."""
    import torch
    import edgert
    import onnx
    from quant_tables.exporters.mnn_compress import symmetric_for_mnn

    path = export(residual_net(), str(tmp_path / "res.onnx"), torch.zeros(1, 1, 8, 8))
    t = calibrate(path, cal_data, "minmax")
    proto = onnx.load(path)
    changed = set(symmetric_for_mnn(copy_table(t), proto, "auto"))
    ops = {o: n.op_type for n in proto.graph.node for o in n.output}
    relu1 = [n.output[0] for n in proto.graph.node if n.op_type == "Relu"][0]
    add_out = [o for o, op in ops.items() if op == "Add"][0]
    assert t.activations["x"].zero_point != 0 and "x" not in changed   # read by a conv only
    assert relu1 in changed and add_out in changed          # read by / written by the Add
    assert any(ops.get(c) == "MaxPool" for c in changed)
    assert not set(symmetric_for_mnn(copy_table(t), proto, "none"))
    flt = ort_run(path, cal_data[:1])
    cos = {}
    for mode in ("auto", "none"):
        params = str(tmp_path / f"{mode}.json")
        write_mnn_compression_params(t, path, params, symmetric=mode)
        _mnnconvert(path, str(tmp_path / f"{mode}.mnn"), params)
        y = edgert.load(str(tmp_path / f"{mode}.mnn"), check="structure").run({"x": cal_data[:1]})["y"]
        cos[mode] = float((y * flt).sum() / np.linalg.norm(y) / np.linalg.norm(flt))
    assert cos["auto"] > 0.999, cos
    print("MNN int8 cosine by symmetric mode:", cos)


def copy_table(t):
    import copy
    return copy.deepcopy(t)
