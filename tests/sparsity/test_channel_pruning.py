"""Structured channel pruning: removed channels equal masked ones, and the model shrinks.

The pruned graph (ONNX Runtime) is compared with the PyTorch model whose removed
channels are zeroed (the masked source), within fp32 tolerance; params and FLOPs
(converters.analysis) must drop. Then the refusals: graph outputs, coupled
layers that keep a channel, zeros lost through Sigmoid.
"""
from __future__ import annotations

import numpy as np
import pytest

from converters.pruning import analyze_channels, plan_channels, prune_channels
from converters.pruning.mask import mask_onnx, mask_torch
from converters.verify import assert_close


def _ort(model, feeds):
    import onnx_ir as ir
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), so,
                             providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def _torch(module, x):
    import torch

    with torch.no_grad():
        return module(*x).numpy()


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "unet"])
def test_pruned_model_equals_masked_source(zoo_sources, name):
    zm, src = zoo_sources[name]
    model = src.model.clone()
    report = prune_channels(model, keep=0.7)
    x = zm.example_inputs
    masked, missing = mask_torch(zm.module, report.mask)
    assert not missing
    reference = _torch(masked, x)
    result = _ort(model, {src.input_names[0]: x[0].numpy()})
    assert_close(reference, result, "fp32", name)
    # the mask changed the model (this is not a no-op), and the model got smaller
    assert np.max(np.abs(_torch(zm.module, x) - reference)) > 1e-2
    assert report.removed_classes > 0
    assert report.params_after < 0.7 * report.params_before
    assert report.flops_after < 0.7 * report.flops_before
    kept = {l["weight"]: l for l in report.layers}
    out_layer = "classifier.1.weight" if name == "mobilenet_v2" else \
        "fc.weight" if name == "resnet18" else "head.weight"
    assert kept[out_layer]["after"] == kept[out_layer]["before"]        # graph output


def test_residual_stream_and_depthwise_stay_consistent(zoo_sources):
    zm, src = zoo_sources["mobilenet_v2"]
    model = src.model.clone()
    report = prune_channels(model, keep=0.5)
    layers = {l["weight"]: l["after"] for l in report.layers}
    # features.2 and features.3 both write the 24-channel residual stream
    assert layers["features.2.conv.2.weight"] == layers["features.3.conv.2.weight"] == 12
    # a depthwise conv keeps as many channels as the expansion before it, group follows
    dw = [n for n in model.graph if n.op_type == "Conv" and n.inputs[1].name ==
          "features.2.conv.1.0.weight"][0]
    assert int(dw.attributes["group"].value) == layers["features.2.conv.0.0.weight"]
    assert dw.inputs[1].const_value.shape[0] == layers["features.2.conv.0.0.weight"]
    bn = [n for n in model.graph if n.op_type == "BatchNormalization"
          and n.inputs[0] is dw.outputs[0]][0]
    assert all(v.const_value.shape[0] == layers["features.2.conv.0.0.weight"]
               for v in bn.inputs[1:])


def test_table_round_trip_and_coupled_refusal(zoo_sources):
    zm, src = zoo_sources["resnet18"]
    table = plan_channels(src.model.clone(), keep=0.75)
    assert all(e.pattern == "channel" and e.pruned for e in table.weights.values())
    a = src.model.clone()
    b = src.model.clone()
    ra = prune_channels(a, keep=0.75)
    rb = prune_channels(b, table=table)
    assert [l["after"] for l in ra.layers] == [l["after"] for l in rb.layers]
    # list a channel for only one of two convs writing the same stream: it stays
    one = type(table)(weights={"layer1.0.conv2.weight": table.weights["layer1.0.conv2.weight"]})
    c = src.model.clone()
    rc = prune_channels(c, table=one)
    assert rc.removed_classes == 0
    assert any("coupled with" in r for r in rc.kept["layer1.0.conv2.weight"])


def test_zeros_lost_through_sigmoid_block_removal():
    import torch
    from torch import nn

    from converters.frontends import load_source

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Sigmoid(), nn.Conv2d(8, 8, 1),
                          nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    src = load_source(model, (torch.randn(1, 3, 8, 8),))
    ca = analyze_channels(src.model)
    reasons = {ca.classes[r].reason for r in ca.producer_roots("0.weight").tolist()}
    assert len(reasons) == 1 and "non-zero" in reasons.pop()        # Sigmoid(0) = 0.5
    assert all(ca.removable(r) for r in ca.producer_roots("2.weight").tolist())
    m = src.model.clone()
    report = prune_channels(m, keep=0.5)
    layers = {l["weight"]: l["after"] for l in report.layers}
    assert layers == {"0.weight": 8, "2.weight": 4, "4.weight": 4}
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype(np.float32)
    ref = _ort(mask_onnx(src.model, report.mask), {"input": x})
    assert_close(ref, _ort(m, {"input": x}), "fp32", "sigmoid net")
