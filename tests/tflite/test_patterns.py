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
