"""Decompositions: the Einsum pass (equations against numpy's einsum, refusals named with
node and equation) and the table of ops a target lacks (Mish, Softplus, ...), through
the real MNN converter + runtime and the real LiteRT interpreter."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from converters import convert
from converters.passes import optimize
from converters.passes.decompose import decompositions
from converters.verify import assert_close
from converters.errors import UnsupportedOpError

F = TensorProto.FLOAT

# (equation, operand shapes, ops expected after the pass)
EQUATIONS = [
    ("bti,oi->bto", [(2, 5, 8), (16, 8)], ["Transpose", "MatMul"]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)], ["Transpose", "MatMul"]),
    ("ij,kj", [(3, 4), (5, 4)], ["Transpose", "MatMul"]),            # implicit output "ik"
    ("bij,bjk,bkl->bil", [(2, 3, 4), (2, 4, 5), (2, 5, 6)], ["MatMul", "MatMul"]),
    ("ij,ij->i", [(3, 4), (3, 4)], ["Mul", "ReduceSum"]),
    ("i,j->ij", [(3,), (4,)], ["Reshape", "Reshape", "Mul"]),
    ("abcd,cd->ab", [(2, 3, 4, 5), (4, 5)], ["Reshape", "Reshape", "MatMul", "Reshape"]),
    ("nchw,oc->nohw", [(1, 3, 4, 5), (6, 3)], ["Transpose", "Transpose", "MatMul", "Transpose"]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)], ["MatMul"]),
    ("bik,bi->bk", [(2, 3, 4), (2, 3)], ["Transpose", "Reshape", "MatMul", "Reshape"]),
    ("ijk->ki", [(2, 3, 4)], ["ReduceSum", "Transpose"]),
    ("ii->i", [(3, 3)], ["Mul", "ReduceSum"]),                      # a diagonal
    ("bii->b", [(2, 4, 4)], ["Mul", "ReduceSum", "ReduceSum"]),     # a batched trace
]


def _einsum_model(equation, shapes, opset=18):
    """One Einsum node; a str dim in a shape is dynamic."""
    names = [f"x{k}" for k in range(len(shapes))]
    g = helper.make_graph([helper.make_node("Einsum", names, ["y"], equation=equation,
                                            name="ein")], "g",
                          [helper.make_tensor_value_info(n, F, s) for n, s in zip(names, shapes)],
                          [helper.make_tensor_value_info("y", F, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m), names


@pytest.mark.parametrize("equation,shapes,ops", EQUATIONS, ids=[e[0] for e in EQUATIONS])
def test_einsum_pass_matches_numpy(equation, shapes, ops):
    proto, names = _einsum_model(equation, shapes)
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in zip(names, shapes)}
    model = ir.from_proto(proto)
    report = optimize(model)
    assert sorted(n.op_type for n in model.graph) == sorted(ops)
    assert report.effect("decompose_einsum").changes == 1
    out = ir.to_proto(model)
    onnx.checker.check_model(out)
    got = ort.InferenceSession(out.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert_close(np.einsum(equation, *(feeds[n] for n in names)), got, "fp32")


def test_einsum_refusal_names_node_and_equation(tmp_path):
    """Two dynamic dims merged into one MatMul row dim cannot be a static Reshape."""
    eq = "bnti,boi->bnto"
    proto, _ = _einsum_model(eq, [(2, "N", "T", 8), (2, 5, 8)])
    model = ir.from_proto(proto)
    report = optimize(model)
    (refusal,) = report.effect("decompose_einsum").refusals
    assert (refusal.node, refusal.op_type) == ("ein", "Einsum")
    assert f"'{eq}'" in refusal.reason and "dynamic" in refusal.reason
    with pytest.raises(UnsupportedOpError) as err:
        convert(proto, "tflite", out_dir=tmp_path, verify=False,
                input_shapes={"x0": [2, "N", "T", 8]})
    assert err.value.node == "ein" and f"'{eq}'" in err.value.reason


def _gaps_model():
    """x [2, 6, 8] -> one output per op a target lacks or MNN computes wrongly: Mish,
    Softplus, Selu, Celu(2), ThresholdedRelu, Softsign, Elu(0.5); Less (via Where);
    ReduceL2 / L1 / SumSquare / LogSumExp with axes as input (opset 18); float Mod;
    x @ W^T and an attention score by Einsum."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((5, 8)) * 0.3).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "ax12"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             numpy_helper.from_array(np.array(7.0, np.float32), "seven")]
    nodes = [helper.make_node("Mish", ["x"], ["mish"]),
             helper.make_node("Softplus", ["x"], ["softplus"]),
             helper.make_node("Selu", ["x"], ["selu"]),
             helper.make_node("Celu", ["x"], ["celu"], alpha=2.0),
             helper.make_node("ThresholdedRelu", ["x"], ["thresholded"], alpha=0.5),
             helper.make_node("Softsign", ["x"], ["softsign"]),
             helper.make_node("Elu", ["x"], ["elu"], alpha=0.5),
             helper.make_node("Less", ["x", "half"], ["lt"]),
             helper.make_node("Where", ["lt", "x", "half"], ["less_where"]),
             helper.make_node("ReduceL2", ["x", "ax2"], ["l2"]),
             helper.make_node("ReduceL1", ["x", "ax12"], ["l1"], keepdims=0),
             helper.make_node("ReduceSumSquare", ["x", "ax2"], ["sumsq"]),
             helper.make_node("ReduceLogSumExp", ["x", "ax2"], ["lse"], keepdims=0),
             helper.make_node("Mod", ["x", "seven"], ["fmod"], fmod=1),
             helper.make_node("Einsum", ["x", "w"], ["proj"], equation="bti,oi->bto"),
             helper.make_node("Einsum", ["x", "x"], ["scores"], equation="bqd,bkd->bqk")]
    outs = ["mish", "softplus", "selu", "celu", "thresholded", "softsign", "elu",
            "less_where", "l2", "l1", "sumsq", "lse", "fmod", "proj", "scores"]
    g = helper.make_graph(nodes, "gaps", [helper.make_tensor_value_info("x", F, [2, 6, 8])],
                          [helper.make_tensor_value_info(o, F, None) for o in outs],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m)


def test_decompositions_on_mnn_and_tflite(tmp_path):
    """MNN lacks Mish and computes Softplus (x > 87), Less, float Mod and the L1/L2/log
    reductions with an axes input wrongly; TFLite lacks the activations, L1/log reductions,
    Mod and Einsum: both convert, run and match ONNX Runtime, on inputs reaching +-100
    (past exp's float32 overflow)."""
    proto = _gaps_model()
    x = np.random.default_rng(2).uniform(-100, 100, (2, 6, 8)).astype(np.float32)
    x[0, 0, :4] = [-1e-3, 0.0, 1e-3, 0.7]
    ref = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})
    report = convert(proto, ("mnn", "tflite"), out_dir=tmp_path, verify_inputs={"x": x},
                     load_check="structure")
    assert report.ok, report.summary()
    assert report.passes.effect("decompose_einsum").changes == 2
    mnn, tfl = report.target("mnn"), report.target("tflite")
    note = next(n for n in mnn.notes if n.startswith("decomposed for mnn"))
    for op in ("Mish", "Softplus", "Less", "ReduceL2", "ReduceL1", "ReduceSumSquare",
               "ReduceLogSumExp", "Mod"):
        assert f"{op} x" in note, note
    assert "Selu" not in note and "Elu" not in note          # MNN's own kernels are right
    note = next(n for n in tfl.notes if n.startswith("decomposed for tflite"))
    for op in ("Mish", "Softplus", "Selu", "Celu", "ThresholdedRelu", "Softsign", "Elu",
               "ReduceL1", "ReduceLogSumExp", "Mod"):
        assert f"{op} x" in note, note
    assert "Softplus x2" in note and "ReduceL2" not in note  # from Mish too; L2 is a lowering
    import edgert
    for target in (mnn, tfl):
        with edgert.load(target.path, check="structure", precision="fp32") as sess:
            got = sess.run({"x": x})
        for (name, r) in zip([o.name for o in proto.graph.output], ref):
            assert_close(r, got[name], "fp32", name=f"{target.target} {name}")


def test_decomposition_table_is_covered_by_tflite_rows():
    from tests.tflite.op_table import CASES
    assert set(decompositions()) <= {c.op for c in CASES}


@pytest.mark.parametrize("op,attrs,shape,reason", [
    ("Resize", {"mode": "cubic"}, [1, 2, 4, 4], "Resize x1"),          # half_pixel: cos 0.88
    ("MaxPool", {"kernel_shape": [3, 3], "dilations": [2, 2]}, [1, 2, 8, 8], "MaxPool x1"),
    ("LpPool", {"kernel_shape": [2, 2]}, [1, 2, 4, 4], "LpPool x1"),
])
def test_mnn_decomposes_what_it_computes_wrongly_or_crashes_on(op, attrs, shape, reason,
                                                                tmp_path):
    """Measured on MNN 3.x: MNN's own kernels run these wrong or crash (SIGFPE); the shared
    decompositions (Gather taps, strided Slices) convert instead, and MNN computes them
    right."""
    import edgert
    inputs = ["x", "", "scales"] if op == "Resize" else ["x"]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")] \
        if op == "Resize" else []
    g = helper.make_graph([helper.make_node(op, inputs, ["y"], name="n", **attrs)], "g",
                          [helper.make_tensor_value_info("x", F, shape)],
                          [helper.make_tensor_value_info("y", F, None)], initializer=inits)
    m = onnx.shape_inference.infer_shapes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    rep = convert(m, "mnn", out_dir=tmp_path, verify=False).target("mnn")
    assert any(reason in n for n in rep.notes), rep.notes
    with edgert.load(rep.path, check="structure") as sess:
        assert_close(ref, sess.run({"x": x})["y"], "fp32")

def test_opset23_attention_block_on_mnn(tmp_path):
    """RMSNormalization -> RotaryEmbedding -> grouped-query causal Attention with a KV cache
    (opset 23, none of them in MNN's op list): decomposed for MNN, which computes it right."""
    import edgert
    rng = np.random.default_rng(4)
    b, s, hq, hkv, d, past = 1, 4, 4, 2, 8, 3

    def c(name, *shape, scale=0.5):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32),
                                       name)

    inits = [c("g", d), c("cos", s, d // 2), c("sin", s, d // 2), c("k", b, hkv, s, d),
             c("v", b, hkv, s, d), c("pk", b, hkv, past, d), c("pv", b, hkv, past, d),
             numpy_helper.from_array(np.arange(s, dtype=np.int64).reshape(1, s), "pos")]
    nodes = [helper.make_node("RMSNormalization", ["x", "g"], ["n"], axis=-1),
             helper.make_node("RotaryEmbedding", ["n", "cos", "sin", "pos"], ["q"]),
             helper.make_node("Attention", ["q", "k", "v", "", "pk", "pv"],
                              ["y", "present_k", "present_v"], is_causal=1)]
    g = helper.make_graph(nodes, "attn", [helper.make_tensor_value_info("x", F, [b, hq, s, d])],
                          [helper.make_tensor_value_info(o, F, None)
                           for o in ("y", "present_k")], initializer=inits)
    proto = onnx.shape_inference.infer_shapes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 23)], ir_version=10))
    x = rng.standard_normal((b, hq, s, d)).astype(np.float32)
    ref = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})
    rep = convert(proto, "mnn", out_dir=tmp_path, verify=False).target("mnn")
    note = next(n for n in rep.notes if n.startswith("decomposed for mnn"))
    assert all(f"{op} x1" in note for op in ("RMSNormalization", "RotaryEmbedding",
                                              "Attention")), note
    with edgert.load(rep.path, check="structure") as sess:
        got = sess.run({"x": x})
    assert_close(ref[0], got["y"], "fp32", name="y")
    assert_close(ref[1], got["present_k"], "fp32", name="present_k")


def test_mnn_matmul_with_a_1d_operand_is_decomposed(tmp_path):
    """MNN aborts on MatMul(1-D, 1-D) (it took the caller's process down in convert()); the
    shared decomposition (a [1, K] row, a [K, 1] column, squeezed) converts and runs."""
    import edgert
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm1d",
                          [helper.make_tensor_value_info("x", F, [6])],
                          [helper.make_tensor_value_info("y", F, None)], initializer=[w])
    m = onnx.shape_inference.infer_shapes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8))
    x = rng.standard_normal(6).astype(np.float32)
    rep = convert(m, "mnn", out_dir=tmp_path, verify=False).target("mnn")
    assert any("MatMul x1" in n for n in rep.notes), rep.notes
    with edgert.load(rep.path, check="isolated") as sess:
        got = np.asarray(sess.run({"x": x})["y"])
    assert got.shape == ()
    assert_close(np.asarray(x @ numpy_helper.to_array(w), np.float32), got, "fp32")
