"""The layout package: permutation algebra, reshape grouping, and the planner's transpose
count on the graph shapes that matter (channel shuffle, flatten -> FC, attention), each
also converted and checked against ONNX Runtime on LiteRT."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper, numpy_helper

from converters.layout import plan_layout
from converters.layout import rewrite
from converters.layout.perm import (
    after_transpose, before_transpose, channel_last, drop_axes, identity, inverse,
    permute_array, physical_shape, transpose_between)
from converters.verify import assert_close
from tests.tflite.conftest import convert_ir, litert_run, ort_run

F = onnx.TensorProto.FLOAT


# -- permutation algebra ---------------------------------------------------------------

@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
def test_transpose_free_and_back(perm):
    """Relabelling a Transpose's output and asking for the input that yields a layout are
    inverse operations, and both agree with numpy on real data."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    p_in = channel_last(4)
    stored = np.transpose(x, p_in)
    out_perm = after_transpose(p_in, perm)
    # the stored bytes, read with out_perm, are Transpose(x, perm)
    assert np.array_equal(np.transpose(np.transpose(x, perm), out_perm), stored)
    assert before_transpose(out_perm, perm) == p_in
    assert inverse(inverse(perm)) == tuple(perm)


def test_transpose_between_moves_stored_data():
    x = np.arange(24).reshape(2, 3, 4)
    src, dst = (0, 2, 1), (2, 0, 1)
    q = transpose_between(src, dst)
    assert np.array_equal(np.transpose(np.transpose(x, src), q), np.transpose(x, dst))


def test_drop_axes_and_constants():
    assert drop_axes((0, 2, 3, 1), [2, 3]) == (0, 1)
    assert drop_axes((0, 2, 3, 1), [1]) == (0, 1, 2)
    c = np.arange(3.0).reshape(3, 1, 1)              # per-channel constant of an NCHW op
    assert permute_array(c, channel_last(4)).shape == (1, 1, 1, 3)
    assert physical_shape([1, 3, 8, 9], channel_last(4)) == [1, 8, 9, 3]


def test_reshape_groups_and_layouts():
    assert rewrite.reshape_groups([1, 116, 8, 8], [1, 2, 58, 8, 8]) == \
        [((1,), (1, 2)), ((2,), (3,)), ((3,), (4,))]
    # channel split on NHWC is free and stays channel-last-ish
    assert rewrite.reshape_out_perm((0, 2, 3, 1), [1, 116, 8, 8], [1, 2, 58, 8, 8]) == \
        (0, 3, 4, 1, 2)
    # NCHW flatten of an NHWC tensor is not free ...
    assert rewrite.reshape_out_perm((0, 2, 3, 1), [1, 4, 2, 3], [1, 24]) is None
    # ... unless H = W = 1 (global pooling), where only size-1 dims move
    assert rewrite.reshape_out_perm((0, 2, 3, 1), [1, 64, 1, 1], [1, 64]) == (0, 1)
    # a dynamic batch pairs with the dynamic batch
    assert rewrite.reshape_out_perm((0, 2, 3, 1), [None, 64, 1, 1], [None, 64]) == (0, 1)
    assert rewrite.regroup((0, 3, 4, 2, 1), [1, 58, 2, 8, 8], [1, 116, 8, 8]) == \
        (0, 3, 4, 1, 2)


def test_flatten_col_perm_is_chw_to_hwc():
    col = rewrite.flatten_col_perm((0, 2, 3, 1), [1, 2, 2, 3])      # C=2, H=2, W=3
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 3))
    stored_flat = np.transpose(x, (0, 2, 3, 1)).reshape(1, -1)
    assert np.array_equal(stored_flat[0], x.reshape(1, -1)[0][col])


# -- the planner on graphs -----------------------------------------------------------------

def _model(nodes, inputs, inits, outputs):
    g = helper.make_graph(nodes, "g", inputs, outputs,
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m, strict_mode=True)


def _w(*shape, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.3).astype(np.float32)


def _check(model, feeds, tmp_path, transposes, **options):
    res = convert_ir(model, tmp_path / "m.tflite", **options)
    assert res.op_counts.get("TRANSPOSE", 0) == transposes, res.op_counts
    got = litert_run(res.path, feeds)
    for ref, name in zip(ort_run(model, feeds), got):
        assert_close(ref, got[name], "fp32")
    return res


def test_channel_shuffle_costs_one_transpose(tmp_path):
    c, g = 8, 2
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["a", "s5"], ["b"]),
             helper.make_node("Transpose", ["b"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["d"]),
             helper.make_node("Conv", ["d", "w2"], ["y"])]
    inits = {"w1": _w(c, 3, 3, 3), "w2": _w(4, c, 1, 1, seed=1),
             "s5": np.array([1, g, c // g, 5, 5], np.int64),
             "s4": np.array([1, c, 5, 5], np.int64)}
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 5, 5])], inits,
                   [helper.make_tensor_value_info("y", F, None)])
    plan = plan_layout(ir.from_proto(model).graph)
    assert plan.transpose_count() == 3          # input, the shuffle itself, output
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5)).astype(np.float32)
    _check(model, {"x": x}, tmp_path, transposes=3)
    nhwc = convert_ir(model, tmp_path / "nhwc.tflite", io_layout="nhwc")
    assert nhwc.op_counts["TRANSPOSE"] == 1 and nhwc.details["boundary_transposes"] == 0
    got = litert_run(nhwc.path, {"x": x.transpose(0, 2, 3, 1).copy()})["y"]
    assert_close(ort_run(model, {"x": x})[0].transpose(0, 2, 3, 1), got, "fp32")


def test_flatten_into_fc_permutes_weights_not_data(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    inits = {"w": _w(4, 3, 3, 3), "fw": _w(10, 4 * 6 * 5, seed=2), "fb": _w(10, seed=3)}
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 6, 5])], inits,
                   [helper.make_tensor_value_info("y", F, None)])
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 5)).astype(np.float32)
    res = _check(model, {"x": x}, tmp_path, transposes=1)        # only the input boundary
    assert "RESHAPE" not in res.op_counts                         # FC flattens NHWC itself
    assert res.op_counts["CONV_2D"] == 1 and "RELU" not in res.op_counts   # Relu fused


def test_attention_transpose_becomes_adj_y(tmp_path):
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Softmax", ["s"], ["y"], axis=-1)]
    ins = [helper.make_tensor_value_info(n, F, [2, 4, 8]) for n in ("q", "k")]
    model = _model(nodes, ins, {}, [helper.make_tensor_value_info("y", F, None)])
    rng = np.random.default_rng(2)
    feeds = {n: rng.standard_normal((2, 4, 8)).astype(np.float32) for n in ("q", "k")}
    res = _check(model, feeds, tmp_path, transposes=0)
    assert res.op_counts == {"BATCH_MATMUL": 1, "SOFTMAX": 1}


def test_nhwc_io_layout_plan():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 4, 4])],
                   {"w": _w(2, 3, 1, 1)}, [helper.make_tensor_value_info("y", F, None)])
    g = ir.from_proto(model).graph
    assert plan_layout(g, "source").transpose_count() == 2
    nhwc = plan_layout(g, "nhwc")
    assert nhwc.transpose_count() == 0
    assert nhwc.input_perms == {"x": (0, 2, 3, 1)} and nhwc.output_perms == {"y": (0, 2, 3, 1)}
    with pytest.raises(ValueError, match="io_layout"):
        plan_layout(g, "nchw")
    assert identity(3) == (0, 1, 2)


def test_conv1d_stack_stays_nwc(tmp_path):
    """A Conv1d stack (conv, depthwise, max pool, conv transpose) is stored NWC throughout:
    one TRANSPOSE at each end, one RESHAPE to [N, 1, W, C] and one back, whatever its depth."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[2, 2]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["d"], group=8, pads=[1, 1]),
             helper.make_node("MaxPool", ["d"], ["p"], kernel_shape=[2], strides=[2]),
             helper.make_node("Conv", ["p", "w3"], ["c"], strides=[2], pads=[1, 1]),
             helper.make_node("ConvTranspose", ["c", "w4"], ["y"], strides=[2])]
    inits = {"w1": _w(8, 4, 5), "w2": _w(8, 1, 3, seed=1), "w3": _w(6, 8, 3, seed=2),
             "w4": _w(6, 3, 2, seed=3)}
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 4, 32])], inits,
                   [helper.make_tensor_value_info("y", F, None)])
    assert plan_layout(ir.from_proto(model).graph).transpose_count() == 2
    x = np.random.default_rng(3).standard_normal((1, 4, 32)).astype(np.float32)
    res = _check(model, {"x": x}, tmp_path, transposes=2)
    assert res.op_counts["RESHAPE"] == 2 and res.op_counts["CONV_2D"] == 2, res.op_counts
    assert "RELU" not in res.op_counts                       # fused into the first conv


def test_group_norm_as_pytorch_exports_it_needs_no_transpose(tmp_path):
    """Reshape [N, G, -1] -> InstanceNormalization -> Reshape back -> per-channel Mul/Add
    between convs is folded to one group norm on the NHWC data: only the I/O transposes."""
    c, g = 8, 4
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["a", "s3"], ["r"]),
             helper.make_node("InstanceNormalization", ["r", "ones", "zeros"], ["n"],
                              epsilon=1e-5),
             helper.make_node("Reshape", ["n", "s4"], ["b"]),
             helper.make_node("Mul", ["b", "gamma"], ["m"]),
             helper.make_node("Add", ["m", "beta"], ["d"]),
             helper.make_node("Conv", ["d", "w2"], ["y"])]
    inits = {"w1": _w(c, 3, 3, 3), "w2": _w(4, c, 1, 1, seed=1),
             "s3": np.array([1, g, -1], np.int64), "s4": np.array([1, c, 5, 6], np.int64),
             "ones": np.ones(g, np.float32), "zeros": np.zeros(g, np.float32),
             "gamma": _w(c, 1, 1, seed=2) + 1, "beta": _w(c, 1, 1, seed=3)}
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 5, 6])], inits,
                   [helper.make_tensor_value_info("y", F, None)])
    x = np.random.default_rng(4).standard_normal((1, 3, 5, 6)).astype(np.float32)
    res = _check(model, {"x": x}, tmp_path, transposes=2)
    assert res.op_counts["MEAN"] == 4 and res.op_counts["SUB"] == 1, res.op_counts


def test_layer_norm_over_chw_reads_nhwc(tmp_path):
    """LayerNormalization over C, H, W (axis=1) of a conv's NHWC output normalizes the
    stored H, W, C: no TRANSPOSE around it, its scale/bias are transposed instead."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("LayerNormalization", ["a", "g", "b"], ["n"], axis=1),
             helper.make_node("Conv", ["n", "w2"], ["y"])]
    inits = {"w1": _w(4, 3, 3, 3), "w2": _w(2, 4, 1, 1, seed=1),
             "g": _w(4, 5, 6, seed=2) + 1, "b": _w(4, 5, 6, seed=3)}
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [1, 3, 5, 6])], inits,
                   [helper.make_tensor_value_info("y", F, None)])
    x = np.random.default_rng(5).standard_normal((1, 3, 5, 6)).astype(np.float32)
    _check(model, {"x": x}, tmp_path, transposes=2)
