"""Analytic per-op values: each row is a one-node graph and the FLOPs/MACs the
formulas in docs/ROOFLINE.md give for it, worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from converters.analysis import analyze
from tests.roofline.conftest import make_model

W = np.zeros  # weights' values do not matter, only their shapes
node = helper.make_node


def one(n, inputs, outputs, inits=(), opset=21, **kw):
    a = analyze(make_model([n], inputs, outputs, inits, opset), **kw)
    assert len(a.layers) == 1, [l.op_type for l in a.layers]
    return a, a.layers[0]


# (id, node, inputs, outputs, initializers, expected MACs, expected FLOPs)
CASES = [
    ("conv3x3_bias", node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
     [("x", [1, 4, 8, 8])], [("y", [1, 6, 8, 8])],
     [("w", W((6, 4, 3, 3), np.float32)), ("b", W(6, np.float32))],
     6 * 64 * 4 * 9, 2 * 6 * 64 * 4 * 9 + 6 * 64),
    ("conv_grouped_stride2", node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 2]),
     [("x", [2, 4, 9, 9])], [("y", [2, 6, 4, 4])], [("w", W((6, 2, 3, 3), np.float32))],
     2 * 6 * 16 * 2 * 9, 2 * (2 * 6 * 16 * 2 * 9)),
    ("conv_depthwise", node("Conv", ["x", "w"], ["y"], group=8, pads=[1, 1, 1, 1]),
     [("x", [1, 8, 10, 10])], [("y", [1, 8, 10, 10])], [("w", W((8, 1, 3, 3), np.float32))],
     8 * 100 * 9, 2 * 8 * 100 * 9),
    ("conv1d", node("Conv", ["x", "w"], ["y"]),
     [("x", [1, 3, 20])], [("y", [1, 5, 16])], [("w", W((5, 3, 5), np.float32))],
     5 * 16 * 3 * 5, 2 * 5 * 16 * 3 * 5),
    ("conv_transpose_s2", node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2]),
     [("x", [1, 4, 5, 5])], [("y", [1, 3, 11, 11])],
     [("w", W((4, 3, 3, 3), np.float32)), ("b", W(3, np.float32))],
     4 * 25 * 3 * 9, 2 * 4 * 25 * 3 * 9 + 3 * 121),
    ("gemm_transB_bias", node("Gemm", ["a", "b", "c"], ["y"], transB=1),
     [("a", [3, 10])], [("y", [3, 7])], [("b", W((7, 10), np.float32)), ("c", W(7, np.float32))],
     3 * 7 * 10, 2 * 3 * 7 * 10 + 3 * 7),
    ("gemm_transA_alpha_beta", node("Gemm", ["a", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0),
     [("a", [10, 3])], [("y", [3, 7])], [("b", W((10, 7), np.float32)), ("c", W(7, np.float32))],
     210, 420 + 21 + 21 + 7),
    ("matmul_batched_broadcast", node("MatMul", ["a", "b"], ["y"]),
     [("a", [2, 3, 4, 5]), ("b", [3, 5, 6])], [("y", [2, 3, 4, 6])], [],
     2 * 3 * 4 * 6 * 5, 2 * 2 * 3 * 4 * 6 * 5),
    ("matmul_vector", node("MatMul", ["a", "b"], ["y"]),
     [("a", [5])], [("y", [6])], [("b", W((5, 6), np.float32))], 30, 60),
    ("einsum_attention_scores", node("Einsum", ["q", "k"], ["y"], equation="bhqd,bhkd->bhqk"),
     [("q", [1, 2, 8, 4]), ("k", [1, 2, 6, 4])], [("y", [1, 2, 8, 6])], [],
     2 * 8 * 6 * 4, 2 * 2 * 8 * 6 * 4),
    ("einsum_ellipsis", node("Einsum", ["a", "b"], ["y"], equation="...ij,...jk->...ik"),
     [("a", [3, 4, 5]), ("b", [3, 5, 2])], [("y", [3, 4, 2])], [], 3 * 4 * 5 * 2, 240),
    ("attention_op_4d", node("Attention", ["q", "k", "v"], ["y"]),
     [("q", [1, 2, 8, 4]), ("k", [1, 2, 6, 4]), ("v", [1, 2, 6, 3])], [("y", [1, 2, 8, 3])], [],
     2 * 8 * 6 * (4 + 3), 2 * 2 * 8 * 6 * 7 + 6 * 2 * 8 * 6),
    ("softmax", node("Softmax", ["x"], ["y"]), [("x", [2, 10])], [("y", [2, 10])], [], 0, 100),
    ("maxpool_3x3", node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
     [("x", [1, 2, 9, 9])], [("y", [1, 2, 4, 4])], [], 0, 2 * 16 * 8),
    ("averagepool_2x2", node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
     [("x", [1, 2, 8, 8])], [("y", [1, 2, 4, 4])], [], 0, 2 * 16 * 4),
    ("global_average_pool", node("GlobalAveragePool", ["x"], ["y"]),
     [("x", [1, 5, 7, 7])], [("y", [1, 5, 1, 1])], [], 0, 5 * 49),
    ("global_max_pool", node("GlobalMaxPool", ["x"], ["y"]),
     [("x", [1, 5, 7, 7])], [("y", [1, 5, 1, 1])], [], 0, 5 * 48),
    ("add_broadcast", node("Add", ["x", "z"], ["y"]),
     [("x", [2, 3, 4]), ("z", [4])], [("y", [2, 3, 4])], [], 0, 24),
    ("sigmoid", node("Sigmoid", ["x"], ["y"]), [("x", [10])], [("y", [10])], [], 0, 40),
    ("hardswish", node("HardSwish", ["x"], ["y"]), [("x", [10])], [("y", [10])], [], 0, 50),
    ("variadic_sum", node("Sum", ["a", "b", "c"], ["y"]),
     [("a", [6]), ("b", [6]), ("c", [6])], [("y", [6])], [], 0, 12),
    ("batchnorm", node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
     [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])],
     [(n, W(3, np.float32)) for n in "sbmv"], 0, 2 * 48),
    ("layernorm", node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1),
     [("x", [2, 5, 8])], [("y", [2, 5, 8])], [("s", W(8, np.float32)), ("b", W(8, np.float32))],
     0, 80 * 7 + 10 * 4),
    ("instancenorm", node("InstanceNormalization", ["x", "s", "b"], ["y"]),
     [("x", [2, 3, 4, 4])], [("y", [2, 3, 4, 4])],
     [("s", W(3, np.float32)), ("b", W(3, np.float32))], 0, 96 * 7 + 6 * 4),
    ("resize_nearest", node("Resize", ["x", "", "sc"], ["y"], mode="nearest"),
     [("x", [1, 2, 4, 4])], [("y", [1, 2, 8, 8])],
     [("sc", np.array([1, 1, 2, 2], np.float32))], 0, 0),
    ("resize_bilinear", node("Resize", ["x", "", "sc"], ["y"], mode="linear"),
     [("x", [1, 2, 4, 4])], [("y", [1, 2, 8, 8])],
     [("sc", np.array([1, 1, 2, 2], np.float32))], 0, 128 * 3 * 3),
    ("resize_cubic", node("Resize", ["x", "", "sc"], ["y"], mode="cubic"),
     [("x", [1, 2, 4, 4])], [("y", [1, 2, 8, 8])],
     [("sc", np.array([1, 1, 2, 2], np.float32))], 0, 128 * 7 * 5),
    ("reduce_mean", node("ReduceMean", ["x", "ax"], ["y"], keepdims=0),
     [("x", [4, 6])], [("y", [4])], [("ax", np.array([1], np.int64))], 0, 24),
    ("reduce_sum", node("ReduceSum", ["x", "ax"], ["y"], keepdims=0),
     [("x", [4, 6])], [("y", [4])], [("ax", np.array([1], np.int64))], 0, 20),
    ("transpose", node("Transpose", ["x"], ["y"], perm=[1, 0]),
     [("x", [4, 6])], [("y", [6, 4])], [], 0, 0),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_flops_and_macs(case):
    _, n, ins, outs, inits, macs, flops = case
    _, layer = one(n, ins, outs, inits, fuse=False)
    assert (layer.macs, layer.flops) == (macs, flops)
    assert not layer.notes


def test_lstm_macs_and_flops():
    h, i, seq = 5, 3, 7
    n = node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=h)
    _, layer = one(n, [("x", [seq, 2, i])], [("y", [seq, 1, 2, h])],
                   [("w", W((1, 4 * h, i), np.float32)), ("r", W((1, 4 * h, h), np.float32)),
                    ("b", W((1, 8 * h), np.float32))])
    steps = seq * 2
    assert layer.macs == steps * 4 * h * (i + h)
    assert layer.flops == 2 * layer.macs + steps * h * 18 + steps * 4 * h * 2


def test_bytes_per_precision_and_int8_bias_stays_int32():
    n = node("Conv", ["x", "w", "b"], ["y"])
    _, l = one(n, [("x", [1, 4, 6, 6])], [("y", [1, 6, 4, 4])],
               [("w", W((6, 4, 3, 3), np.float32)), ("b", W(6, np.float32))])
    w_el, b_el, x_el, y_el = 6 * 4 * 9, 6, 4 * 36, 6 * 16
    assert l.weight_bytes("fp32") == 4 * (w_el + b_el)
    assert l.weight_bytes("fp16") == 2 * (w_el + b_el)
    assert l.weight_bytes("int8") == w_el + 4 * b_el
    assert (l.read_bytes("fp32"), l.write_bytes("fp32")) == (4 * x_el, 4 * y_el)
    assert (l.read_bytes("int8"), l.write_bytes("fp16")) == (x_el, 2 * y_el)
    assert l.intensity("fp32") == pytest.approx(l.flops / (4 * (w_el + b_el + x_el + y_el)))


def test_broadcast_input_read_at_its_own_size():
    _, l = one(node("Mul", ["x", "s"], ["y"]), [("x", [2, 8, 5])], [("y", [2, 8, 5])],
               [("s", W((8, 1), np.float32))])
    assert (l.read_bytes(), l.weight_bytes(), l.write_bytes()) == (320, 32, 320)


def test_gather_reads_only_the_rows_it_outputs():
    n = node("Gather", ["table", "idx"], ["y"])
    _, l = one(n, [("idx", [3], TensorProto.INT64)], [("y", [3, 16])],
               [("table", W((1000, 16), np.float32))])
    # 3 rows of the 1000-row table, the int64 indices at 8 bytes, the output
    assert (l.weight_bytes(), l.read_bytes(), l.write_bytes()) == (3 * 16 * 4, 3 * 8, 3 * 16 * 4)
    assert l.read_bytes("int8") == 3 * 8          # indices keep their own width


def test_unknown_op_is_memory_only_with_a_note():
    model = make_model([node("Relu", ["x"], ["h"]),
                        node("FancyOp", ["h"], ["y"], domain="com.example")],
                       [("x", [4, 4])], [("y", [4, 4])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    a = analyze(model, fuse=False)
    fancy = a.layers[1]
    assert fancy.flops == 0 and fancy.read_bytes() == 64
    assert "no cost model for com.example::FancyOp" in fancy.notes[0]
    assert a.uncounted_ops == {"com.example::FancyOp": 1}
    assert any("FancyOp x1" in n for n in a.notes)


def test_views_are_free_and_not_listed():
    model = make_model([node("Reshape", ["x", "s"], ["h"]), node("Relu", ["h"], ["y"])],
                       [("x", [2, 6])], [("y", [3, 4])], [("s", np.array([3, 4], np.int64))])
    a = analyze(model)
    assert [l.op_type for l in a.layers] == ["Relu"]
    assert a.layers[0].flops == 12


def test_fusion_removes_the_intermediate_tensor():
    nodes = [node("Conv", ["x", "w"], ["c"]), node("Clip", ["c", "lo", "hi"], ["y"])]
    inits = [("w", W((4, 2, 1, 1), np.float32)), ("lo", np.float32(0)), ("hi", np.float32(6))]
    model = make_model(nodes, [("x", [1, 2, 5, 5])], [("y", [1, 4, 5, 5])], inits)
    fused = analyze(model)
    split = analyze(model, fuse=False)
    assert [l.op_type for l in fused.layers] == ["Conv+Clip"]
    assert fused.total_flops == split.total_flops == 2 * 100 * 2 + 2 * 100
    # the 100-element fp32 tensor between Conv and Clip is neither written nor read
    assert split.traffic_bytes() - fused.traffic_bytes() == 2 * 400


def test_no_fusion_when_the_conv_output_has_two_users():
    nodes = [node("Conv", ["x", "w"], ["c"]), node("Sigmoid", ["c"], ["s"]),
             node("Mul", ["c", "s"], ["y"])]
    model = make_model(nodes, [("x", [1, 2, 5, 5])], [("y", [1, 4, 5, 5])],
                       [("w", W((4, 2, 1, 1), np.float32))])
    assert [l.op_type for l in analyze(model).layers] == ["Conv", "Sigmoid", "Mul"]


def test_qdq_weights_are_folded_into_int8_weights():
    q = np.zeros((4, 2, 1, 1), np.int8)
    nodes = [node("DequantizeLinear", ["wq", "ws"], ["w"]), node("Conv", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", [1, 2, 3, 3])], [("y", [1, 4, 3, 3])],
                       [("wq", q), ("ws", np.float32(0.1))])
    a = analyze(model)
    assert [l.op_type for l in a.layers] == ["Conv"]
    assert a.layers[0].weight_bytes("int8") == 8 and a.layers[0].weight_bytes("fp32") == 32
    assert a.weight_bytes("int8") == 8


def test_dynamic_dims_default_to_one_and_shapes_override():
    model = make_model([node("Relu", ["x"], ["y"])], [("x", ["batch", 8])], [("y", ["batch", 8])])
    a = analyze(model)
    assert a.input_shapes == {"x": (1, 8)} and a.total_flops == 8
    assert any("dim 0 (batch) is dynamic" in n for n in a.notes)
    assert analyze(model, shapes={"x": [5, 8]}).total_flops == 40


def test_bad_shape_override_names_the_inputs():
    from edgert.errors import InputError

    model = make_model([node("Relu", ["x"], ["y"])], [("x", [2, 8])], [("y", [2, 8])])
    with pytest.raises(InputError, match="no model input named nope; inputs: x"):
        analyze(model, shapes={"nope": [1]})
    with pytest.raises(InputError, match="rank 2"):
        analyze(model, shapes={"x": [1, 2, 3]})


def test_registry_rejects_duplicates_and_lists_ops():
    from converters.analysis.registry import register, supported_ops

    ops = supported_ops()
    assert {"Conv", "ConvTranspose", "Gemm", "MatMul", "Softmax", "Resize", "LSTM"} <= set(ops)
    with pytest.raises(ValueError, match="Conv registered twice"):
        register("Conv")(lambda n: None)
