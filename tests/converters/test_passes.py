"""Every pass leaves outputs numerically unchanged (ONNX Runtime before and after),
changes what it claims, and explains what it refuses."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from converters import zoo
from converters.passes import FUSED_ACTIVATION_KEY, PIPELINE, get_pass, op_counts, optimize
from converters.verify import assert_close, random_feeds
from tests.converters import onnx_builders as ob


def _run(model: ir.Model, feeds):
    proto = ir.serde.serialize_model(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ir(proto: onnx.ModelProto) -> ir.Model:
    """As the ONNX front-end hands models to the passes: checked and shape-inferred."""
    onnx.checker.check_model(proto)
    return ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))


def _feeds(model: ir.Model, seed: int = 0):
    specs = [(v.name, tuple(d if isinstance(d, int) else 2 for d in v.shape),
              v.dtype.numpy()) for v in model.graph.inputs]
    return random_feeds(specs, seed)


def _step_through(model: ir.Model, feeds):
    """Run the pipeline pass by pass; check outputs after each; return changes per pass."""
    changes = {}
    before = _run(model, feeds)
    for cls in PIPELINE:
        res = cls().run(model)
        changes[cls.name] = res.changes
        after = _run(model, feeds)
        onnx.checker.check_model(ir.serde.serialize_model(model))
        for i, (a, b) in enumerate(zip(before, after)):
            assert_close(a, b, "fp32", name=f"{cls.name} output {i}")
        before = after
    return changes


def test_every_pass_keeps_every_zoo_model_numerically_unchanged(zoo_sources):
    totals = dict.fromkeys((c.name for c in PIPELINE), 0)
    for name in zoo.names():
        src = zoo_sources[name]
        model = src.model.clone()
        changes = _step_through(model, dict(src.example_inputs))
        for k, v in changes.items():
            totals[k] += v
    # the zoo exercises these passes for real (the others have targeted tests below)
    for name in ("fold_constants", "fold_shapes", "fold_batchnorm", "fuse_activations", "tidy"):
        assert totals[name] > 0, f"{name} changed nothing on the whole zoo"


def test_pipeline_converges_and_reports_op_changes(zoo_sources):
    model = zoo_sources["mobilenet_v2"].model.clone()
    report = optimize(model)
    assert report.converged and report.rounds <= 3
    assert report.ops_before.get("BatchNormalization") == 52
    assert "BatchNormalization" not in report.ops_after
    assert report.effect("fold_batchnorm").op_delta() == {"BatchNormalization": -52}
    assert report.ops_after["Conv"] == 52 and report.nodes_after == 100
    marked = [n for n in model.graph if n.metadata_props.get(FUSED_ACTIVATION_KEY) == "RELU6"]
    assert len(marked) == 35    # every Conv followed by ReLU6 (Clip 0..6)
    assert "passes: 560 -> 100 nodes" in report.summary()


def test_batchnorm_folds_into_matmul_at_rank_2(tmp_path):
    rng = np.random.default_rng(1)
    model = _ir(ob.matmul_batchnorm(rng, rank=2))
    feeds = _feeds(model)
    want = _run(model, feeds)
    res = get_pass("fold_batchnorm").run(model)
    assert res.changes == 1
    assert op_counts(model) == {"Add": 1, "MatMul": 1}
    assert_close(want[0], _run(model, feeds)[0], "fp32")


def test_batchnorm_after_rank3_matmul_is_refused_with_reason():
    model = _ir(ob.matmul_batchnorm(np.random.default_rng(2), rank=3))
    res = get_pass("fold_batchnorm").run(model)
    assert res.changes == 0
    assert op_counts(model) == {"BatchNormalization": 1, "MatMul": 1}
    reasons = [r.reason for r in res.refusals if r.rule == "FuseBatchNormIntoMatMul"]
    assert reasons and "rank 3" in reasons[0]


def test_matmul_add_becomes_gemm_only_when_bias_broadcasts_into_result():
    rng = np.random.default_rng(3)
    model = _ir(ob.matmul_add(rng, (4,)))
    feeds = _feeds(model)
    want = _run(model, feeds)
    assert get_pass("fuse_matmul_add").run(model).changes == 1
    assert op_counts(model) == {"Gemm": 1}
    assert_close(want[0], _run(model, feeds)[0], "fp32")

    model = _ir(ob.matmul_add(rng, (3, 2, 4)))      # Add broadcasts the result up to rank 3
    res = get_pass("fuse_matmul_add").run(model)
    assert res.changes == 0 and op_counts(model) == {"Add": 1, "MatMul": 1}
    assert any("rank 3 > 2" in r.reason for r in res.refusals)


def test_zero_pad_folds_into_conv_and_reflect_pad_is_refused():
    rng = np.random.default_rng(4)
    model = _ir(ob.pad_conv(rng, "constant"))
    feeds = _feeds(model)
    want = _run(model, feeds)
    assert get_pass("fuse_pad_conv").run(model).changes >= 1
    assert op_counts(model) == {"Conv": 1}
    conv = next(iter(model.graph))
    assert list(conv.attributes["pads"].value) == [1, 2, 1, 2]
    assert_close(want[0], _run(model, feeds)[0], "fp32")

    model = _ir(ob.pad_conv(rng, "reflect"))
    res = get_pass("fuse_pad_conv").run(model)
    assert res.changes == 0 and op_counts(model) == {"Conv": 1, "Pad": 1}
    assert any(r.node == "pad" or r.op_type in ("Conv", "Pad") for r in res.refusals)
    assert any("constant" in r.reason.lower() or "mode" in r.reason.lower()
               for r in res.refusals)


def test_dead_code_identity_dropout_and_noops_are_removed():
    model = _ir(ob.dead_code(np.random.default_rng(5)))
    feeds = _feeds(model)
    want = _run(model, feeds)
    res = get_pass("remove_dead").run(model)
    assert op_counts(model) == {"Relu": 1}
    assert res.changes == 5
    assert_close(want[0], _run(model, feeds)[0], "fp32")


def test_activation_mark_refused_when_conv_output_is_shared():
    model = _ir(ob.conv_relu_shared(np.random.default_rng(6)))
    res = get_pass("fuse_activations").run(model)
    conv = next(n for n in model.graph if n.op_type == "Conv")
    assert FUSED_ACTIVATION_KEY not in conv.metadata_props
    [refusal] = [r for r in res.refusals if r.rule == "mark_fused_activation"]
    assert refusal.node == "conv_shared" and "feeds 2 nodes" in refusal.reason


def test_shape_chain_with_dynamic_batch_becomes_constant_reshape(zoo_sources):
    model = zoo_sources["dynamic_batch_cnn"].model.clone()
    assert op_counts(model).get("Shape", 0) > 0
    report = optimize(model)
    ops = op_counts(model)
    assert "Shape" not in ops and "Concat" not in ops
    reshape = next(n for n in model.graph if n.op_type == "Reshape")
    assert reshape.inputs[1].const_value.numpy().tolist() == [-1, 64]
    assert report.effect("fold_shapes").changes > 0
    x = np.random.default_rng(7).standard_normal((3, 3, 64, 64)).astype(np.float32)
    src = zoo_sources["dynamic_batch_cnn"]
    assert_close(src.run_reference({"input": x})["logits"], _run(model, {"input": x})[0])


def test_unknown_pass_name_is_a_clear_error():
    from converters.errors import ConversionError

    with pytest.raises(ConversionError, match="unknown pass 'fold_everything'.*fold_constants"):
        optimize(_ir(ob.dead_code(np.random.default_rng(0))), ["fold_everything"])


def _div_model(divisor: np.ndarray, dtype=onnx.TensorProto.FLOAT) -> ir.Model:
    from onnx import helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("Div", ["x", "c"], ["y"])], "div",
        [helper.make_tensor_value_info("x", dtype, [2, 3])],
        [helper.make_tensor_value_info("y", dtype, [2, 3])],
        [numpy_helper.from_array(divisor, "c")])
    return _ir(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_division_by_a_float_constant_becomes_a_multiplication():
    model = _div_model(np.array([255.0, 3.0, 0.1], np.float32))
    feeds = {"x": np.random.default_rng(6).normal(size=(2, 3)).astype(np.float32) * 100}
    want = _run(model, feeds)[0]
    assert get_pass("div_to_mul").run(model).changes == 1
    assert "Div" not in op_counts(model) and op_counts(model)["Mul"] == 1
    got = _run(model, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=2 * np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("divisor", [np.array([2, 3, 4], np.int64),          # truncates
                                     np.array([2.0, 0.0, 4.0], np.float32)])   # x / 0
def test_division_that_a_reciprocal_would_change_is_left_alone(divisor):
    dtype = onnx.TensorProto.INT64 if divisor.dtype == np.int64 else onnx.TensorProto.FLOAT
    model = _div_model(divisor, dtype)
    assert get_pass("div_to_mul").run(model).changes == 0
    assert op_counts(model) == {"Div": 1}


def test_constant_of_shape_on_a_static_shape_is_folded():
    """onnxscript keeps ConstantOfShape; a small one with a known shape becomes a constant
    (TFLite needs one: attention masks are built this way)."""
    from onnx import helper

    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("ConstantOfShape", ["s"], ["ones"],
                          value=helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [1.5])),
         helper.make_node("Add", ["x", "ones"], ["y"])], "cos",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])])
    model = _ir(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    feeds = _feeds(model)
    want = _run(model, feeds)[0]
    get_pass("fold_constants").run(model)
    assert op_counts(model) == {"Add": 1}
    np.testing.assert_array_equal(_run(model, feeds)[0], want)


# -- the root filter (``passes.base.RootFiltered``) -----------------------------------------

def _canonical(model: ir.Model) -> list:
    """The graph as a comparable list: per node its op, domain, attributes and inputs and
    outputs numbered by first appearance (generated value names may differ), plus the
    initializers' values in that numbering."""
    ids: dict = {}

    def num(v):
        if v is None:
            return None
        return ids.setdefault(id(v), len(ids))

    nodes = [(n.domain, n.op_type, sorted((k, repr(a.value)) for k, a in n.attributes.items()),
              [num(v) for v in n.inputs], [num(v) for v in n.outputs],
              dict(n.metadata_props)) for n in ir.traversal.RecursiveGraphIterator(model.graph)]
    inits = sorted((num(v), v.const_value.numpy().tobytes())
                   for v in model.graph.initializers.values() if v.const_value is not None)
    return [nodes, [num(v) for v in model.graph.outputs], inits]


def _rules_both_ways(model: ir.Model, rules) -> None:
    """Apply ``rules`` with onnxscript's rule set as is and root-filtered, on copies of
    ``model``: the same graph and the same refusals, or the filter changed a result."""
    from onnxscript.rewriter import RewriteRuleSet

    from converters.passes.base import _RefusalTracer, root_filtered

    plain, filtered = model.clone(), model.clone()
    traced = []
    for m, rs in ((plain, rules), (filtered, root_filtered(rules))):
        tracer = _RefusalTracer()
        RewriteRuleSet(list(rs)).apply_to_model(m.clone(), tracer=tracer)
        traced.append(tracer.refusals)
        RewriteRuleSet(list(rs)).apply_to_model(m)
    assert _canonical(plain) == _canonical(filtered)
    assert traced[0] == traced[1]


def test_rules_tried_only_at_their_root_op_rewrite_and_refuse_the_same(zoo_sources):
    """Every rule pass's rules, at every step of the pipeline, on every zoo model and the
    targeted graphs above: root-filtered (what the passes run) and as onnxscript tries
    them (every rule at every node) give the same graph and the same refusals."""
    from converters.passes.base import RootFiltered, RulePass, root_filtered

    rng = np.random.default_rng(3)
    models = [zoo_sources[n].model for n in zoo.names()] + [
        _ir(ob.matmul_batchnorm(rng, rank=2)), _ir(ob.matmul_batchnorm(rng, rank=3)),
        _ir(ob.matmul_add(rng, [4])), _ir(ob.matmul_add(rng, [3, 2, 4])),
        _ir(ob.pad_conv(rng)), _ir(ob.pad_conv(rng, "reflect")), _ir(ob.dead_code(rng)),
        _ir(ob.conv_relu_shared(rng))]
    filtered = applied = 0
    for source in models:
        model = source.clone()
        for cls in PIPELINE:
            p = cls()
            if isinstance(p, RulePass):
                rules = list(p.rules())
                filtered += sum(isinstance(r, RootFiltered) for r in root_filtered(rules))
                _rules_both_ways(model, rules)
                applied += 1
            p.run(model)
    assert applied >= 7 * len(models) and filtered > 0


# -- constant folding without per-node shape inference where every shape is known ---------

def _shape_arithmetic_export(tmp_path) -> ir.Model:
    """A small CNN exported without constant folding (as other frameworks' converters
    write graphs): its flatten is Shape -> Gather -> Unsqueeze -> Concat -> Reshape and its
    HardSwish small ops, so constant folding has real work at a static input size."""
    import torch
    from torch import nn

    from converters.frontends import load_source

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            y = nn.functional.hardswish(self.bn(self.conv(x)))
            y = nn.functional.adaptive_avg_pool2d(y, 4)
            return self.fc(y.view(y.size(0), -1))

    torch.manual_seed(0)
    path = str(tmp_path / "shape_arith.onnx")
    torch.onnx.export(Net().eval(), (torch.rand(1, 3, 16, 16),), path, dynamo=False,
                      do_constant_folding=False, opset_version=13)
    return load_source(path).model


def test_folding_skips_shape_inference_only_where_it_adds_nothing(zoo_sources, tmp_path):
    """The pipeline with ``fold_constants`` choosing (inference only while a shape is
    missing) and with inference forced on every run gives the same graph, on every zoo
    model and on a graph of shape arithmetic; the choice is really made both ways."""
    from converters.passes.fold_constants import FoldConstants, shapes_known

    models = [zoo_sources[n].model for n in zoo.names()] + [_shape_arithmetic_export(tmp_path)]
    chosen = []
    for source in models:
        out = []
        for mode in (None, True):
            model = source.clone()
            fold = FoldConstants(shape_inference=mode)
            passes = [fold if cls is FoldConstants else cls() for cls in PIPELINE]
            report = optimize(model, passes)
            out.append((_canonical(model), report.effect("fold_constants").changes))
            if mode is None:
                chosen += fold.inferred
        assert out[0] == out[1]
    # inference where a shape was missing (a Reshape fed by shape arithmetic, a dynamic
    # batch), none in the confirming runs once folding has made every shape known
    assert True in chosen and False in chosen
    assert not shapes_known(zoo_sources["dynamic_batch_cnn"].model)


def test_a_missing_shape_still_gets_inferred_and_folded():
    """Shape(Relu(x)) with Relu's output unannotated: only per-node inference gives it a
    shape, so folding must run with inference, and the Shape becomes a constant."""
    from onnx import helper

    from converters.passes.fold_constants import shapes_known

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Shape", ["r"], ["s"]),
         helper.make_node("Cast", ["s"], ["f"], to=onnx.TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["f"], ["y"], keepdims=0)], "missing",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [])])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(proto)
    model = ir.serde.deserialize_model(proto)        # no shape inference: r has no shape
    assert not shapes_known(model)
    get_pass("fold_constants").run(model)
    assert op_counts(model) == {}                     # y is the constant 5
    assert model.graph.outputs[0].const_value.numpy() == 5.0
