"""One activation-fusion table (``edgert.fused_activations``) and its three readers: the
graph pass's mark, the TFLite writer's fused activation, the lowering of a lone Clip.
Each bound case is converted and checked against ONNX Runtime on LiteRT."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper, numpy_helper

from converters.passes import FUSED_ACTIVATION_KEY
from converters.passes.fuse_activations import FuseActivations
from converters.verify import assert_close
from edgert.fused_activations import activation_name, clip_activation, fused_code
from tests.tflite.conftest import convert_ir, litert_run, ort_run

F = onnx.TensorProto.FLOAT

# (Clip bounds) -> (the table's name, does TFLite fuse it into the conv, lone-Clip builtins)
CASES = [
    ((0.0, 6.0), "RELU6", True, {"RELU6": 1}),
    ((0.0, None), "RELU", True, {"RELU": 1}),
    ((-1.0, 1.0), "RELU_N1_TO_1", True, {"RELU_N1_TO_1": 1}),
    ((0.0, 1.0), "RELU_0_TO_1", False, {"RELU_0_TO_1": 1}),
    ((-2.0, 3.0), None, False, {"MAXIMUM": 1, "MINIMUM": 1}),
]


def test_the_table():
    for (lo, hi), name, fused, _ in CASES:
        assert clip_activation(lo, hi) == name == activation_name("Clip", lo, hi)
        assert fused_code("Clip", lo, hi) == (name if fused else None)
        assert fused_code("Clip", lo, hi, engine="mnn") == (
            name if name in ("RELU", "RELU6") else None)
    assert clip_activation(-0.0, 6.0) == "RELU6"          # -0.0 == 0.0
    assert clip_activation(float("nan"), float("nan")) is None   # bounds computed at run time
    assert fused_code("Relu") == fused_code("Relu", engine="mnn") == "RELU"
    assert activation_name("Sigmoid") is None and fused_code("LeakyRelu") is None


def _clip_inputs(x: str, lo, hi, inits: dict):
    names = [x]
    for tag, v in (("lo", lo), ("hi", hi)):
        if v is None:
            names.append("")
        else:
            inits[tag] = np.array(v, np.float32)
            names.append(tag)
    return names


def _conv_clip(lo, hi, conv: bool = True) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {"w": (rng.standard_normal((4, 3, 3, 3)) * 2).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])] if conv else []
    nodes.append(helper.make_node("Clip", _clip_inputs("c" if conv else "x", lo, hi, inits),
                                  ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


@pytest.mark.parametrize("bounds,name,fused,lone", CASES, ids=[str(c[1]) for c in CASES])
def test_each_reader_follows_the_table(tmp_path, bounds, name, fused, lone):
    lo, hi = bounds
    x = (np.random.default_rng(1).standard_normal((1, 3, 6, 6)) * 2).astype(np.float32)
    model = _conv_clip(lo, hi)
    marked = ir.from_proto(model)
    FuseActivations().run(marked)
    [conv] = [n for n in marked.graph if n.op_type == "Conv"]
    assert conv.metadata_props.get(FUSED_ACTIVATION_KEY) == (name if fused else f"CLIP({lo},{hi})")

    res = convert_ir(model, tmp_path / "conv_clip.tflite")
    ops = {k: v for k, v in res.op_counts.items() if k != "TRANSPOSE"}
    assert ops == ({"CONV_2D": 1} if fused else {"CONV_2D": 1, **lone}), res.op_counts
    assert_close(ort_run(model, {"x": x})[0], litert_run(res.path, {"x": x})["y"], "fp32")

    alone = _conv_clip(lo, hi, conv=False)
    res = convert_ir(alone, tmp_path / "clip.tflite")
    assert res.op_counts == lone
    assert_close(ort_run(alone, {"x": x})[0], litert_run(res.path, {"x": x})["y"], "fp32")
