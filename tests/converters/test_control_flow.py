"""Control flow (ONNX If and Loop) through both targets: folded when the condition or the
trip count is known, otherwise MNN's If/While and LiteRT's IF/WHILE subgraphs, checked
against ONNX Runtime on the real engines. The VAD-shaped model is Silero VAD's form: an
If on the int64 input ``sr`` choosing between two recurrent models with a state."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

import edgert
from converters import convert
from converters.errors import UnsupportedOpError
from converters.passes import optimize
from converters.tflite.backend import convert_onnx
from tests.converters import control_flow_models as cfm

# float32 recurrences over a handful of steps: a few ulp of the O(1) values
ATOL = 1e-5


def _ort(model: onnx.ModelProto, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def _run(path: str, feeds):
    sess = edgert.load(path, check="structure")
    try:
        return sess.run(feeds)
    finally:
        sess.close()


def _assert_matches(got, want):
    assert set(got) == set(want)
    for k, ref in want.items():
        assert np.asarray(got[k]).shape == ref.shape, k
        np.testing.assert_allclose(np.asarray(got[k], np.float64), ref, atol=ATOL, rtol=0,
                                   err_msg=k)


def test_identities_forwarding_one_outer_value_in_two_branches_are_kept():
    """remove_dead used to make both branches' outputs the same outer value (onnx-ir:
    "... is already an output of a different graph")."""
    model = ir.from_proto(onnx.shape_inference.infer_shapes(cfm.vad_like()))
    report = optimize(model)
    feeds = cfm.vad_feeds(16000)
    _assert_matches(_ort(ir.serde.serialize_model(model), feeds), _ort(cfm.vad_like(), feeds))
    assert report.ops_after.get("If") == 2       # sr is an input: both Ifs stay


@pytest.fixture(scope="module")
def vad_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("vad")
    report = convert(cfm.vad_like(), targets=["mnn", "tflite"], out_dir=out, name="vad",
                     verify_inputs=cfm.vad_feeds(16000), load_check="structure")
    return report


@pytest.mark.parametrize("target", ["mnn", "tflite"])
@pytest.mark.parametrize("sr", [16000, 8000])
def test_vad_like_if_on_sample_rate_converts_and_matches(vad_files, target, sr):
    rep = vad_files.target(target)
    assert rep.error is None and rep.verification.passed
    feeds = cfm.vad_feeds(sr)
    want = _ort(cfm.vad_like(), feeds)
    _assert_matches(_run(rep.path, feeds), want)
    if target == "tflite":
        assert rep.op_counts.get("IF") == 2
    # the two branches really differ, so the right one was taken
    other = _ort(cfm.vad_like(), {**feeds, "sr": np.array(24000 - sr, np.int64)})
    assert np.abs(other["stateN"] - want["stateN"]).max() > 0.05


def test_tflite_if_file_holds_both_branches_as_subgraphs(tmp_path):
    from ai_edge_litert import schema_py_generated as s

    path = tmp_path / "vad.tflite"
    model = ir.from_proto(onnx.shape_inference.infer_shapes(cfm.vad_like()))
    optimize(model)
    convert_onnx(model, path)
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(path.read_bytes(), 0))
    assert len(m.subgraphs) == 5                    # main + 2 x (then, else)
    ifs = [op for op in m.subgraphs[0].operators
           if m.operatorCodes[op.opcodeIndex].builtinCode == s.BuiltinOperator.IF]
    branches = sorted(i for op in ifs for i in (op.builtinOptions.thenSubgraphIndex,
                                               op.builtinOptions.elseSubgraphIndex))
    assert branches == [1, 2, 3, 4]


@pytest.mark.parametrize("target,scan", [("tflite", True), ("mnn", False)])
@pytest.mark.parametrize("with_condition", [False, True])
def test_loop_with_run_time_trip_count(tmp_path, target, scan, with_condition):
    model = cfm.loop_accumulate(trip_count_input=True, with_condition=with_condition, scan=scan)
    x = np.array([[1.0, 0.2, 0.5]], np.float32)
    rep = convert(model, targets=[target], out_dir=tmp_path, name="loop", load_check="structure",
                  verify_inputs={"x": x, "M": np.array(6, np.int64)}).target(target)
    assert rep.verification.passed
    assert rep.op_counts.get("WHILE" if target == "tflite" else "While", 0) >= 1
    for trips in (0, 1, 3, 6):
        feeds = {"x": x, "M": np.array(trips, np.int64)}
        _assert_matches(_run(rep.path, feeds), _ort(model, feeds))
    if with_condition and scan:   # sum(y) passes 3 after 4 iterations: the body stops it
        assert _run(rep.path, {"x": x, "M": np.array(6, np.int64)})["ys"].shape[0] == 4


def test_mnn_refuses_a_loop_with_scan_outputs_that_may_run_zero_times(tmp_path):
    """MNN's runtime segfaults on such a loop when it runs zero times (measured)."""
    with pytest.raises(UnsupportedOpError, match="segfaults when a Loop with scan outputs"):
        convert(cfm.loop_accumulate(trip_count_input=True), targets=["mnn"], out_dir=tmp_path,
                name="loop", verify=False)


def test_loop_with_constant_trip_count_is_unrolled(tmp_path):
    model = cfm.loop_accumulate(trip_count_input=False, trips=4)
    x = {"x": np.array([[1.0, -2.0, 0.5]], np.float32)}
    report = convert(model, targets=["mnn", "tflite"], out_dir=tmp_path, name="loop",
                     verify_inputs=x)
    assert "Loop" not in report.passes.ops_after
    effect = report.passes.effect("fold_control_flow")
    assert any("4 iterations" in n for n in effect.notes)
    for target in ("mnn", "tflite"):
        _assert_matches(_run(report.target(target).path, x), _ort(model, x))


def test_if_with_constant_condition_is_replaced_by_its_branch():
    from converters.passes import get_pass

    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("If", ["c"], ["y"],
                               then_branch=_branch("t", "Neg"), else_branch=_branch("e", "Abs"))],
        "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
        initializer=[onnx.numpy_helper.from_array(np.array(False), "c")])
    model = ir.from_proto(onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17)]))
    res = get_pass("fold_control_flow").run(model)
    assert res.changes == 1 and [n.op_type for n in model.graph] == ["Abs"]
    assert model.graph.outputs[0].name == "y"


def _branch(tag: str, op: str) -> onnx.GraphProto:
    return onnx.helper.make_graph(
        [onnx.helper.make_node(op, ["x"], [f"{tag}_y"])], tag, [],
        [onnx.helper.make_tensor_value_info(f"{tag}_y", onnx.TensorProto.FLOAT, [3])])


def test_loop_that_can_never_end_is_refused_for_tflite(tmp_path):
    model = cfm.loop_accumulate(trip_count_input=True)
    model.graph.node[0].input[0] = ""               # no trip count
    model.graph.node[0].input[1] = ""               # no condition
    model.graph.input.pop()
    with pytest.raises(UnsupportedOpError, match="never ends"):
        convert(model, targets=["tflite"], out_dir=tmp_path, name="loop", verify=False)


def test_full_int8_with_control_flow_is_refused_for_tflite():
    from converters.backends import BackendOptions
    from converters.tflite.backend import TFLiteBackend
    from edgert.errors import UnsupportedOptionError
    from quant_tables.table import QuantTable

    model = ir.from_proto(onnx.shape_inference.infer_shapes(cfm.vad_like()))
    with pytest.raises(UnsupportedOptionError, match="control flow"):
        TFLiteBackend().check(model, BackendOptions(precision="int8", quant_table=QuantTable()))


@pytest.mark.parametrize("target", ["mnn", "tflite"])
def test_if_on_a_bool_input_takes_a_bool_feed(tmp_path, target):
    """MNN stores a bool input as int32; the session casts a bool feed to it."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("If", ["c"], ["y"],
                               then_branch=_branch("t", "Neg"), else_branch=_branch("e", "Abs"))],
        "g", [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
              onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    rep = convert(model, targets=[target], out_dir=tmp_path, name="if", load_check="structure",
                  verify_inputs={"c": np.array(True), "x": x}).target(target)
    for c in (True, False):
        feeds = {"c": np.array(c), "x": x}
        _assert_matches(_run(rep.path, feeds), _ort(model, feeds))
