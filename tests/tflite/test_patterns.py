"""Multi-node rewrites before lowering (converters/tflite/patterns.py), checked on LiteRT
against ONNX Runtime: what they fold into, and that the caller's model is left as it was."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from converters.verify import assert_close
from tests.tflite.conftest import convert_ir, litert_run, ort_run

F = onnx.TensorProto.FLOAT


def _model(nodes, x_shape, inits):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, x_shape)],
                          [helper.make_tensor_value_info("y", F, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m, strict_mode=True)


def test_pixel_shuffle_after_conv_becomes_depth_to_space(tmp_path):
    """Conv -> Relu -> DepthToSpace(CRD): the conv's output channels are permuted to DCR
    order, so it is one DEPTH_TO_SPACE; a CRD DepthToSpace of an input keeps the general
    RESHAPE + TRANSPOSE + RESHAPE."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((12, 3, 3, 3)) * 0.3).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("DepthToSpace", ["r"], ["y"], blocksize=2, mode="CRD")]
    model = _model(nodes, [1, 3, 5, 4], {"w": w, "b": b})
    x = rng.standard_normal((1, 3, 5, 4)).astype(np.float32)
    src = ir.from_proto(model)
    res = convert_ir(src, tmp_path / "ps.tflite")
    assert res.op_counts == {"TRANSPOSE": 2, "CONV_2D": 1, "DEPTH_TO_SPACE": 1}, res.op_counts
    assert_close(ort_run(model, {"x": x})[0], litert_run(res.path, {"x": x})["y"], "fp32")
    # the caller's graph and weights are untouched
    d2s = [n for n in src.graph if n.op_type == "DepthToSpace"][0]
    assert d2s.attributes.get_string("mode") == "CRD"
    assert np.array_equal(src.graph.initializers["w"].const_value.numpy(), w)


def _se_block(six: np.float32, alpha: float, beta: float):
    """PP-OCR's MobileNetV3 pieces as Paddle exports them: a conv, its hard-swish written
    x * clip(x + 3, 0, 6) * (1/6) (the divide already a multiply), and an SE gate
    Conv -> HardSigmoid(alpha, beta) -> Mul."""
    rng = np.random.default_rng(1)
    inits = {"w1": (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32),
             "w2": (rng.standard_normal((8, 8, 1, 1)) * 0.4).astype(np.float32),
             "b2": rng.standard_normal(8).astype(np.float32),
             "three": np.float32(3), "zero": np.float32(0), "six": np.float32(6),
             "sixth": six}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "three"], ["a"]),
             helper.make_node("Clip", ["a", "zero", "six"], ["r6"]),
             helper.make_node("Mul", ["c", "r6"], ["m"]),
             helper.make_node("Mul", ["m", "sixth"], ["hs"]),
             helper.make_node("Conv", ["hs", "w2", "b2"], ["g"]),
             helper.make_node("HardSigmoid", ["g"], ["gate"], alpha=alpha, beta=beta),
             helper.make_node("Mul", ["hs", "gate"], ["y"])]
    return _model(nodes, [1, 3, 6, 6], inits)


def test_hard_swish_times_sixth_and_hard_sigmoid_after_conv_fold(tmp_path):
    """x * relu6(x + 3) * (1/6) is one HARD_SWISH; HardSigmoid(0.2, 0.5) after a conv goes
    into the conv's weights and leaves one RELU_0_TO_1 (it was MUL, ADD, MAXIMUM, MINIMUM)."""
    model = _se_block(np.float32(1.0 / 6.0), 0.2, 0.5)
    res = convert_ir(model, tmp_path / "se.tflite")
    assert res.op_counts.get("HARD_SWISH") == 1 and res.op_counts.get("RELU_0_TO_1") == 1
    assert "MAXIMUM" not in res.op_counts and "MINIMUM" not in res.op_counts
    assert res.op_counts.get("MUL") == 1 and res.op_counts.get("CONV_2D") == 2, res.op_counts
    x = np.random.default_rng(2).standard_normal((1, 3, 6, 6)).astype(np.float32) * 3
    assert_close(ort_run(model, {"x": x})[0], litert_run(res.path, {"x": x})["y"], "fp32")


def test_hard_swish_pattern_needs_a_sixth(tmp_path):
    """A scale that is not 1/6 is no hard-swish: the ops stay and still compute the graph."""
    model = _se_block(np.float32(0.2), 0.2, 0.5)
    res = convert_ir(model, tmp_path / "not_hs.tflite")
    assert "HARD_SWISH" not in res.op_counts
    x = np.random.default_rng(3).standard_normal((1, 3, 6, 6)).astype(np.float32) * 3
    assert_close(ort_run(model, {"x": x})[0], litert_run(res.path, {"x": x})["y"], "fp32")
