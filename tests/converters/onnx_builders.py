"""Small ONNX graphs built with onnx.helper for the pass and error tests
(seeded weights; each builder returns a ModelProto)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def _model(nodes, inputs, outputs, inits, domains: Sequence[tuple] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in domains]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgert-tests")
    model.ir_version = 9
    return model


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def matmul_batchnorm(rng, rank: int = 2) -> onnx.ModelProto:
    """x @ W -> BatchNormalization (channels on axis 1). Rank 2 (Linear + BatchNorm1d)
    folds; at rank 3 axis 1 is not the MatMul's feature axis and must be refused."""
    x_shape, w_shape = ([4, 8], (8, 5)) if rank == 2 else ([2, 6, 8], (8, 8))
    out_shape = [4, 5] if rank == 2 else [2, 6, 8]
    c = out_shape[1]
    inits = [_init("W", rng.standard_normal(w_shape)), _init("gamma", rng.uniform(0.5, 1.5, c)),
             _init("beta", rng.standard_normal(c) * 0.1),
             _init("mean", rng.standard_normal(c) * 0.1), _init("var", rng.uniform(0.5, 1.5, c))]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
             helper.make_node("BatchNormalization", ["mm", "gamma", "beta", "mean", "var"], ["y"],
                              name="bn", epsilon=1e-3)]
    return _model(nodes, [_f("x", x_shape)], [_f("y", out_shape)], inits)


def matmul_add(rng, bias_shape: Sequence[int]) -> onnx.ModelProto:
    """x[2,8] @ W[8,4] + c: a Gemm when c broadcasts into [2,4], refused otherwise."""
    c = rng.standard_normal(bias_shape).astype(np.float32)
    inits = [_init("W", rng.standard_normal((8, 4))), _init("c", c)]
    out = list(np.broadcast_shapes((2, 4), tuple(bias_shape)))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
             helper.make_node("Add", ["mm", "c"], ["y"], name="add")]
    return _model(nodes, [_f("x", [2, 8])], [_f("y", out)], inits)


def pad_conv(rng, mode: str = "constant") -> onnx.ModelProto:
    """Pad -> Conv: zero constant padding folds into the conv, reflect padding must not."""
    inits = [_init("w", rng.standard_normal((4, 3, 3, 3)) * 0.3), _init("b", rng.standard_normal(4)),
             numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64), "pads")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode=mode),
             helper.make_node("Conv", ["p", "w", "b"], ["y"], name="conv", kernel_shape=[3, 3])]
    return _model(nodes, [_f("x", [1, 3, 8, 8])], [_f("y", [1, 4, 8, 10])], inits)


def dead_code(rng) -> onnx.ModelProto:
    """Identity, Dropout, x*1, x+0, and a node nobody reads around one Relu."""
    one = _init("one", [1.0])
    zero = _init("zero", [0.0])
    nodes = [helper.make_node("Identity", ["x"], ["i"], name="identity"),
             helper.make_node("Dropout", ["i"], ["d"], name="dropout"),
             helper.make_node("Mul", ["d", "one"], ["m"], name="mul_one"),
             helper.make_node("Add", ["m", "zero"], ["a"], name="add_zero"),
             helper.make_node("Relu", ["a"], ["y"], name="relu"),
             helper.make_node("Sigmoid", ["x"], ["unused"], name="dead_sigmoid")]
    return _model(nodes, [_f("x", [2, 5])], [_f("y", [2, 5])], [one, zero])


def conv_relu_shared(rng) -> onnx.ModelProto:
    """Conv whose output feeds a Relu *and* an Add: its activation cannot be fused."""
    inits = [_init("w", rng.standard_normal((3, 3, 1, 1))), _init("b", rng.standard_normal(3))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv_shared"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "c"], ["y"], name="add")]
    return _model(nodes, [_f("x", [1, 3, 4, 4])], [_f("y", [1, 3, 4, 4])], inits)


def single_op(op_type: str, domain: str = "", attrs: Optional[dict] = None,
              shape: List[int] = (2, 6)) -> onnx.ModelProto:
    """x -> OP -> y; for unsupported-op errors."""
    node = helper.make_node(op_type, ["x"], ["y"], name=f"my_{op_type.lower()}", domain=domain,
                            **(attrs or {}))
    domains = [(domain, 1)] if domain else []
    return _model([node], [_f("x", list(shape))], [_f("y", list(shape))], [], domains)
