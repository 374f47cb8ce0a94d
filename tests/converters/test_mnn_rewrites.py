"""MNN: what it computes wrongly is rewritten into ops it computes right, or refused
before anything is written; never written and flagged afterwards.

Each row is one node in the form MNN gets wrong (the forms of ONNX's own node tests,
tests/conformance), its expected outputs from ONNX's reference implementation
(``onnx.reference``, the ground truth of those tests). Rows of one opset share a model,
so MNN's converter runs once per group; the crash and hang rows (MatMul of two vectors,
OneHot, pools without strides, LSTM with Y_h as a graph output) killed or hung the
process before."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import edgert
from converters import convert
from edgert.errors import EdgertError

R = np.random.default_rng(7)
F = np.float32


def f32(*shape, scale=1.0):
    return (R.standard_normal(shape) * scale).astype(F)


@dataclass
class Row:
    id: str
    op: str
    inputs: List[Tuple[Optional[str], Optional[np.ndarray], bool]]   # (name, value, constant)
    attrs: Dict = field(default_factory=dict)
    outputs: int = 1
    opset: int = 18


def _rnn_weights(gates: int, hidden: int = 3, feat: int = 2):
    return [("W", f32(1, gates * hidden, feat, scale=0.5), True),
            ("R", f32(1, gates * hidden, hidden, scale=0.5), True)]


# rewritten (or legalized) for MNN, and right
REWRITTEN = [
    Row("argmax_last", "ArgMax", [("x", np.array([[2, 1, 2], [3, 3, 1]], F), False)],
        {"axis": 1, "keepdims": 1, "select_last_index": 1}),
    Row("gather_elements_neg", "GatherElements",
        [("x", f32(2, 3), False), ("i", np.array([[-1, 0], [1, -3]], np.int64), False)],
        {"axis": 1}),
    Row("scatter_elements_neg", "ScatterElements",
        [("x", f32(1, 5), False), ("i", np.array([[1, -3]], np.int64), True),
         ("u", np.array([[1.5, 2.5]], F), True)], {"axis": 1}),
    Row("round", "Round", [("x", np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.3, -2.7, 1e8], F),
                                  False)]),
    Row("shrink", "Shrink", [("x", np.linspace(-2, 2, 9).astype(F), False)],
        {"lambd": 1.5, "bias": 0.5}),
    Row("clip_crossed", "Clip", [("x", f32(5), False), ("lo", np.array(2.0, F), True),
                                 ("hi", np.array(1.0, F), True)]),
    Row("mod_mixed_sign", "Mod", [("a", np.array([-4.3, 7.2, 5.0, 4.3, -7.2, 8.0, -3.0], F),
                                   False),
                                  ("b", np.array([2.1, -3.4, 8.0, -2.1, 3.4, 5.0, 7.0], F),
                                   False)], {"fmod": 0}, opset=28),  # float fmod=0: opset 28
    Row("prelu_last_axis", "PRelu", [("x", f32(3, 4, 5), False), ("s", f32(5), True)]),
    Row("pow_int_base", "Pow", [("x", np.array([1, 2, 3], np.int64), False),
                                ("y", np.array([4, 5, 6], F), True)]),
    Row("reduce_empty_axes", "ReduceSum", [("x", f32(3, 2, 2), False),
                                           ("axes", np.zeros(0, np.int64), True)],
        {"keepdims": 1}),
    Row("det", "Det", [("x", np.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]], F), False)]),
    Row("det3", "Det", [("x", f32(2, 3, 3), False)]),
    Row("lpnorm_axis0", "LpNormalization",
        [("x", np.array([[1, 2, 0], [3, 4, 0]], F), False)], {"axis": 0, "p": 2}),
    Row("split_uneven", "Split", [("x", f32(2, 7), False)], {"axis": 1, "num_outputs": 3},
        outputs=3),
    Row("pad_axes", "Pad", [("x", f32(1, 3, 4), False), ("pads", np.array([1, 2], np.int64),
                                                         True),
                            (None, None, False), ("axes", np.array([-1], np.int64), True)]),
    Row("reverse_sequence_batch0", "ReverseSequence",
        [("x", np.arange(16, dtype=F).reshape(4, 4), False),
         ("lens", np.array([0, 2, 3, 4], np.int64), False)], {"batch_axis": 0, "time_axis": 1}),
    Row("gemm_trans_a", "Gemm", [("a", f32(3, 4), False), ("b", f32(3, 5), True),
                                 ("c", f32(4, 5), True)], {"transA": 1, "alpha": 0.5}),
    Row("matmul_batch_vector", "MatMul", [("a", f32(1, 2, 3, 4), False), ("b", f32(4), True)]),
    Row("matmul_vectors", "MatMul", [("a", f32(4), False), ("b", f32(4), False)]),  # segfault
    Row("conv_transpose_1d", "ConvTranspose", [("x", f32(1, 2, 5), False),
                                               ("w", f32(2, 3, 3), True)],
        {"strides": [2], "pads": [1, 0], "output_padding": [1]}),
    Row("lstm_reverse", "LSTM", [("x", f32(4, 1, 2), False)] + _rnn_weights(4),
        {"hidden_size": 3, "direction": "reverse"}, outputs=3),
    Row("gru_reverse", "GRU", [("x", f32(4, 1, 2), False)] + _rnn_weights(3),
        {"hidden_size": 3, "direction": "reverse", "linear_before_reset": 1}, outputs=2),
    Row("lstm_all_outputs", "LSTM", [("x", f32(3, 2, 2), False)] + _rnn_weights(4),
        {"hidden_size": 3}, outputs=3),          # was "Value 'Y_h' is an output of graph"
    Row("maxpool_ceil_reduce_by_one", "MaxPool", [("x", f32(1, 1, 2, 2), False)],
        {"kernel_shape": [1, 1], "strides": [2, 2], "ceil_mode": 1}),
    Row("avgpool_ceil", "AveragePool", [("x", f32(1, 2, 5, 5), False)],
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    Row("maxpool_same_upper", "MaxPool", [("x", f32(1, 1, 5, 5), False)],
        {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    Row("maxpool_no_strides", "MaxPool", [("x", f32(1, 2, 6, 6), False)],
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),                 # SIGFPE before
    Row("avgpool_no_strides", "AveragePool", [("x", f32(1, 2, 6, 6), False)],
        {"kernel_shape": [2, 2]}),                                       # hang before
    Row("maxpool_dilated", "MaxPool", [("x", f32(1, 2, 7, 7), False)],
        {"kernel_shape": [2, 2], "strides": [1, 1], "dilations": [2, 2], "pads": [1, 0, 1, 0]}),
    Row("avgpool_dilated_ceil", "AveragePool", [("x", f32(1, 1, 8, 8), False)],
        {"kernel_shape": [2, 2], "strides": [2, 2], "dilations": [2, 2], "ceil_mode": 1,
         "count_include_pad": 1, "pads": [1, 1, 1, 1]}, opset=19),
    Row("lppool", "LpPool", [("x", f32(1, 2, 5, 5), False)],
        {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]}),    # SIGFPE before
    Row("maxpool_3d_no_pads", "MaxPool", [("x", f32(1, 1, 4, 4, 4), False)],
        {"kernel_shape": [2, 2, 2]}),                                    # hang before
    Row("batchnorm_run_time_params", "BatchNormalization",
        [("x", f32(2, 3, 4), False), ("g", f32(3), False), ("b", f32(3), False),
         ("m", f32(3), False), ("v", np.abs(f32(3)) + 0.5, False)]),     # converter crash
    Row("batchnorm_default_epsilon", "BatchNormalization",
        [("x", f32(1, 3, 2, 2, scale=3.0), False), ("g", f32(3), True), ("b", f32(3), True),
         ("m", f32(3), True), ("v", np.array([0.0117, 1.0, 2e-4], F), True)]),  # eps taken as 0
    Row("logsoftmax_default_axis", "LogSoftmax", [("x", f32(3, 4), False)]),   # crash
    Row("max_one_input", "Max", [("x", f32(3), False)]),                       # crash
    Row("resize_axes", "Resize", [("x", f32(1, 1, 2, 3), False), (None, None, False),
                                  ("scales", np.array([2.0, 3.0], F), True)],
        {"axes": [3, 2], "mode": "nearest"}),
    Row("onehot_axis", "OneHot", [("i", np.array([[1, -1], [5, 0]], np.int64), False),
                                  ("depth", np.array(4, np.int64), True),
                                  ("v", np.array([-1.0, 2.0], F), True)], {"axis": 1}),  # hang
    Row("nll_ignore_index", "NegativeLogLikelihoodLoss",
        [("x", f32(3, 5), False), ("t", np.array([1, 2, 4], np.int64), True)],
        {"ignore_index": 2, "reduction": "mean"}),
    Row("gelu_exact", "Gelu", [("x", np.linspace(-6, 6, 121).astype(F), False)], opset=20),
    Row("space_to_depth_crd", "SpaceToDepth", [("x", f32(1, 2, 4, 4), False)],
        {"blocksize": 2, "mode": "CRD"}, opset=28),
]

# refused before anything is written, with these words in the reason
REFUSED = [
    (Row("unique_axis", "Unique", [("x", np.array([[1, 0], [1, 0], [2, 3]], F), False)],
         {"axis": 0}), "ignores axis"),
    (Row("lstm_peepholes", "LSTM", [("x", f32(2, 1, 2), False)] + _rnn_weights(4)
         + [(None, None, False), (None, None, False), (None, None, False), (None, None, False),
            ("P", f32(1, 9), True)], {"hidden_size": 3}), "peepholes"),
]


# Refused once (MNN computes them wrongly or not at all: the reason given), now written
# with the shared decompositions (converters/passes/decompose_*.py) and checked against
# ONNX's reference.
DECOMPOSED = [
    (Row("maxpool_indices", "MaxPool", [("x", f32(1, 1, 4, 4), False)],
         {"kernel_shape": [2, 2], "strides": [2, 2]}, outputs=2), "no Indices output"),
    (Row("avgpool_dilated_large", "AveragePool", [("x", f32(1, 1, 20, 20), False)],
         {"kernel_shape": [9, 9], "strides": [1, 1], "dilations": [2, 2]}, opset=19),
     "dilated"),                 # 81 window offsets: more Slices than a rewrite may write
    (Row("grid_sample_nearest", "GridSample", [("x", f32(1, 1, 3, 3), False),
                                               ("g", f32(1, 2, 2, 2, scale=0.5), True)],
         {"mode": "nearest"}, opset=20), "mode='nearest'"),
    (Row("scatternd_add", "ScatterND", [("x", f32(4), False),
                                        ("i", np.array([[1], [3]], np.int64), True),
                                        ("u", f32(2), True)], {"reduction": "add"}),
     "reduction='add'"),
    (Row("resize_align_corners_down", "Resize",
         [("x", f32(1, 1, 2, 4), False), (None, None, False),
          ("scales", np.array([1, 1, 0.6, 0.6], F), True)],
         {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
     "not a whole number"),
]


def _model(rows: List[Row], opset: int, expected: Dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes, inputs, inits, outputs = [], [], [], []
    for row in rows:
        names = []
        for name, value, const in row.inputs:
            if name is None:
                names.append("")
                continue
            full = f"{row.id}_{name}"
            names.append(full)
            if const:
                inits.append(numpy_helper.from_array(value, full))
            else:
                inputs.append(helper.make_tensor_value_info(
                    full, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
        outs = [f"{row.id}_y{k}" for k in range(row.outputs)]
        nodes.append(helper.make_node(row.op, names, outs, name=row.id, **row.attrs))
        for o in outs:
            ref = expected.get(o)
            outputs.append(helper.make_tensor_value_info(
                o, helper.np_dtype_to_tensor_dtype(ref.dtype) if ref is not None
                else onnx.TensorProto.FLOAT, list(ref.shape) if ref is not None else None))
    graph = helper.make_graph(nodes, "rows", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _feeds(rows: List[Row]) -> Dict[str, np.ndarray]:
    return {f"{r.id}_{n}": v for r in rows for n, v, const in r.inputs
            if n is not None and not const}


def _expected(rows: List[Row], opset: int) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    for row in rows:
        model = _model([row], opset, {})
        names = [o.name for o in model.graph.output]
        got = ReferenceEvaluator(model).run(None, _feeds([row]))
        out.update({n: np.asarray(v) for n, v in zip(names, got)})
    return out


def _groups(rows: List[Row]) -> Dict[int, List[Row]]:
    groups: Dict[int, List[Row]] = {}
    for row in rows:
        groups.setdefault(row.opset, []).append(row)
    return groups


def _assert_matches(row: Row, expected: Dict[str, np.ndarray], got) -> None:
    """The row's outputs equal ONNX's reference: integers exactly, floats to a few ulp
    (float32 arithmetic on O(1) values)."""
    for k in range(row.outputs):
        name = f"{row.id}_y{k}"
        ref, res = expected[name], np.asarray(got[name])
        assert res.shape == ref.shape, name
        if ref.dtype.kind in "biu":
            np.testing.assert_array_equal(res.astype(ref.dtype), ref, err_msg=name)
        else:
            np.testing.assert_allclose(res, ref, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory):
    """opset -> (rows, expected outputs, outputs of the converted .mnn, report)."""
    out = {}
    for opset, rows in _groups(REWRITTEN).items():
        expected = _expected(rows, opset)
        model = _model(rows, opset, expected)
        feeds = _feeds(rows)
        report = convert(model, targets=["mnn"], precision="fp32", name=f"rows{opset}",
                         out_dir=tmp_path_factory.mktemp(f"mnn{opset}"), verify_inputs=feeds,
                         load_check="structure")
        rep = report.target("mnn")
        sess = edgert.load(rep.path, check="structure")
        try:
            got = sess.run(feeds)
        finally:
            sess.close()
        out[opset] = (expected, got, rep)
    return out


@pytest.mark.parametrize("row", REWRITTEN, ids=[r.id for r in REWRITTEN])
def test_mnn_rewrite_matches_onnx_reference(rewritten, row):
    expected, got, rep = rewritten[row.opset]
    assert rep.verification is not None and rep.verification.passed, rep.verification.failures
    _assert_matches(row, expected, got)


def test_rewrites_are_named_in_the_report(rewritten):
    notes = " ".join(rewritten[18][2].notes)
    for op in ("ArgMax", "OneHot", "LSTM", "MatMul", "Round"):
        assert f"{op} x" in notes


@pytest.mark.parametrize("row,why", REFUSED, ids=[r.id for r, _ in REFUSED])
def test_mnn_refuses_what_it_computes_wrongly_before_writing(tmp_path, row, why):
    expected = _expected([row], row.opset)
    model = _model([row], row.opset, expected)
    with pytest.raises(EdgertError, match=why) as info:
        convert(model, targets=["mnn"], precision="fp32", out_dir=tmp_path, name="m",
                verify=False)
    assert not (tmp_path / "m.mnn").exists()
    assert f"node '{row.id}'" in str(info.value) and "mnn" in str(info.value)


@pytest.mark.parametrize("row,was", DECOMPOSED, ids=[r.id for r, _ in DECOMPOSED])
def test_mnn_decomposes_what_it_computed_wrongly(tmp_path, row, was):
    expected = _expected([row], row.opset)
    model = _model([row], row.opset, expected)
    feeds = _feeds([row])
    report = convert(model, targets=["mnn"], precision="fp32", out_dir=tmp_path, name="m",
                     verify_inputs=feeds, load_check="structure")
    rep = report.target("mnn")
    assert rep.verification is not None and rep.verification.passed, rep.verification.failures
    sess = edgert.load(rep.path, check="structure")
    try:
        got = sess.run(feeds)
    finally:
        sess.close()
    _assert_matches(row, expected, got)


def test_rewrites_leave_mnn_right_forms_alone():
    """A forward LSTM, an ArgMax without select_last_index, a per-channel PRelu and an
    even Split go to MNN untouched (a rewrite costs ops)."""
    import onnx_ir as ir
    from converters.mnn import support

    rows = [Row("lstm", "LSTM", [("x", f32(3, 1, 2), False)] + _rnn_weights(4),
                {"hidden_size": 3}, outputs=3),
            Row("argmax", "ArgMax", [("x", f32(2, 3), False)], {"axis": 1}),
            Row("prelu", "PRelu", [("x", f32(1, 3, 4, 4), False), ("s", f32(3, 1, 1), True)]),
            Row("split", "Split", [("x", f32(2, 6), False)], {"axis": 1, "num_outputs": 3},
                outputs=3)]
    model = ir.from_proto(_model(rows, 18, _expected(rows, 18)))
    assert [n.name for n in model.graph if support.node_reason(n)] == []


def test_every_rewrite_answers_a_wrong_row():
    from converters.mnn.rewrites import rewrites
    from converters.mnn.support import WRONG

    table = rewrites()
    assert {"ArgMax", "LSTM", "OneHot", "MatMul", "Round", "Resize", "MaxPool"} <= set(table)
    assert all(op in WRONG and r.formula for op, r in table.items())


@pytest.mark.parametrize("length,k,s,pads,out", [(5, 2, 2, [0, 0], 3), (6, 3, 2, [1, 1], 4),
                                                  (7, 3, 3, [0, 0], 3), (2, 1, 2, [0, 0], 1)])
def test_ceil_mode_pads_are_exact(length, k, s, pads, out):
    """The ceil_mode rewrite pads the end just enough for the last window and no more."""
    import onnx_ir as ir
    from converters.mnn.rewrite_windows import _pool_pads

    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k], strides=[s], pads=pads,
                            ceil_mode=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", onnx.TensorProto.FLOAT, [1, 1, length])], [helper.make_tensor_value_info(
            "y", onnx.TensorProto.FLOAT, [1, 1, out])])
    begin, end = _pool_pads(ir.from_proto(helper.make_model(graph)).graph.node(0))
    assert (length + begin + end - k) // s + 1 == out
    assert begin == pads[0] and length + begin + end < (out - 1) * s + k + s


def test_approximate_gelu_keeps_mnns_fused_kernel_when_asked(tmp_path):
    row = Row("gelu", "Gelu", [("x", np.linspace(-6, 6, 121).astype(F), False)], opset=20)
    model = _model([row], 20, _expected([row], 20))
    rep = convert(model, targets=["mnn"], out_dir=tmp_path, name="g", verify=False,
                  backend_options={"mnn": {"approximate_gelu": True}}).target("mnn")
    assert rep.op_counts.get("GELU") == 1 and "ERF" not in rep.op_counts
    got = edgert.load(rep.path, check="structure").run(_feeds([row]))["gelu_y0"]
    err = np.abs(got - _expected([row], 20)["gelu_y0"]).max()
    assert 1e-4 < err < 1e-3      # MNN's approximation, as documented (4.7e-4)
