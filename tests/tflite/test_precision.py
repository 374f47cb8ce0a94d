"""Weight precisions: fp16 (FLOAT16 + DEQUANTIZE), dynamic-range int8 (per-channel int8
weights on the output-channel axis, hybrid kernel versions), and the quantization
arithmetic the full-int8 hook will use."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from converters.tflite.quant import quantize_bias, symmetric_int8
from converters.verify import assert_close
from tests.tflite.conftest import convert_ir, cosine, litert_run, ort_run

F = onnx.TensorProto.FLOAT


def _w(*shape, seed):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.2).astype(np.float32)


def _net(weights):
    """Conv 3x3 (16->32) -> depthwise 3x3 (x128 via 1x1 expand) -> global pool -> FC."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "w2"], ["e"]),
             helper.make_node("Conv", ["e", "w3"], ["d"], group=128, pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["d"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", F, [1, 16, 8, 8])],
                          [helper.make_tensor_value_info("y", F, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    return onnx.shape_inference.infer_shapes(m)


@pytest.fixture(scope="module")
def net():
    weights = {"w1": _w(32, 16, 3, 3, seed=1), "b1": _w(32, seed=2), "w2": _w(128, 32, 1, 1, seed=3),
               "w3": _w(128, 1, 3, 3, seed=4), "fw": _w(16, 128, seed=5), "fb": _w(16, seed=6)}
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    return weights, {"x": x}


def _tensors(path):
    from ai_edge_litert import schema_py_generated as s
    m = s.Model.GetRootAs(open(path, "rb").read(), 0)
    sg = m.Subgraphs(0)
    return s, [sg.Tensors(i) for i in range(sg.TensorsLength())]


def _versions(path):
    from ai_edge_litert import schema_py_generated as s
    m = s.Model.GetRootAs(open(path, "rb").read(), 0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return {names[m.OperatorCodes(i).BuiltinCode()]: m.OperatorCodes(i).Version()
            for i in range(m.OperatorCodesLength())}


def test_fp16_weights_and_dequantize(net, tmp_path):
    weights, feeds = net
    model = _net(weights)
    fp32 = convert_ir(model, tmp_path / "a.tflite")
    fp16 = convert_ir(model, tmp_path / "b.tflite", precision="fp16")
    s, tensors = _tensors(fp16.path)
    halves = [t for t in tensors if t.Type() == s.TensorType.FLOAT16]
    # every weight and bias (6), not the zero biases written for the bias-less convs
    assert len(halves) == 6 and fp16.op_counts["DEQUANTIZE"] == 6
    assert "fp16: 6 float constant(s) stored as float16" in fp16.notes
    assert _versions(fp16.path)["DEQUANTIZE"] == 3
    assert 0.45 < fp16.size_bytes / fp32.size_bytes < 0.6
    ref = ort_run(model, feeds)[0]
    assert_close(ref, litert_run(fp16.path, feeds)["y"], "fp16")


def test_int8_dynamic_range_weights(net, tmp_path):
    weights, feeds = net
    model = _net(weights)
    res = convert_ir(model, tmp_path / "q.tflite", precision="int8_weights")
    s, tensors = _tensors(res.path)
    q = {t.Name().decode(): t for t in tensors if t.Type() == s.TensorType.INT8}
    # the 3x3 conv (4608), the 1x1 expand (4096) and the FC (2048) and depthwise (1152)
    assert len(q) == 4
    assert "int8_weights: 4 conv/FC weight(s) stored as int8" in res.notes
    axes = sorted((t.Quantization().ScaleLength(), t.Quantization().QuantizedDimension())
                  for t in q.values())
    assert axes == [(16, 0), (32, 0), (128, 0), (128, 3)]   # depthwise [1,3,3,128]: axis 3
    for t in q.values():
        assert not np.any(t.Quantization().ZeroPointAsNumpy())     # symmetric
    v = _versions(res.path)
    assert (v["CONV_2D"], v["DEPTHWISE_CONV_2D"], v["FULLY_CONNECTED"]) == (5, 6, 12)
    # numerics: against ONNX Runtime on the same weights quantized per channel (weight error
    # only); the hybrid kernels add the on-the-fly activation quantization on top.
    fake = {}
    for k, v_ in weights.items():
        axis = 0
        if v_.ndim > 1 and v_.size >= 1024:
            qv, sc = symmetric_int8(v_, axis)
            fake[k] = (qv.astype(np.float32) * sc.reshape([-1] + [1] * (v_.ndim - 1)))
        else:
            fake[k] = v_
    ref = ort_run(_net(fake), feeds)[0]
    out = litert_run(res.path, feeds)["y"]
    assert cosine(ref, out) > 0.999
    assert_close(ref, out, "int8_weights")


def test_small_weights_stay_float(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [1, 4, 4, 4])],
                          [helper.make_tensor_value_info("y", F, None)],
                          initializer=[numpy_helper.from_array(_w(8, 4, 1, 1, seed=0), "w")])
    m = onnx.shape_inference.infer_shapes(helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8))
    res = convert_ir(m, tmp_path / "s.tflite", precision="int8_weights")
    s, tensors = _tensors(res.path)
    assert not [t for t in tensors if t.Type() == s.TensorType.INT8]
    assert _versions(res.path)["CONV_2D"] == 1
    # asked for int8 weights, given a float32 file: the report says so
    assert ("int8_weights: 0 conv/FC weight(s) stored as int8; 1 conv/FC weight(s) smaller "
            "than 1024 elements stay float32 (backend option int8_min_elements); nothing was "
            "stored at this precision: the file is float32") in res.notes


def test_symmetric_int8_and_bias_quantization():
    w = np.array([[0.5, -1.27, 0.01], [2.54, 0.0, -0.3]], np.float32)
    q, scales = symmetric_int8(w, axis=0)
    np.testing.assert_allclose(scales, [0.01, 0.02], rtol=1e-6)
    assert q.dtype == np.int8 and q.tolist() == [[50, -127, 1], [127, 0, -15]]
    assert np.all(np.abs(q * scales[:, None] - w) <= scales[:, None] / 2 + 1e-7)
    zero_q, zero_s = symmetric_int8(np.zeros((2, 3), np.float32), axis=0)
    assert not zero_q.any() and np.all(zero_s == 1.0)                  # no division by zero
    b, bs = quantize_bias(np.array([0.5, -1.0]), 0.1, np.array([0.01, 0.02]))
    np.testing.assert_allclose(bs, [0.001, 0.002], rtol=1e-6)
    assert b.dtype == np.int32 and b.tolist() == [500, -500]


class _TableQuant:
    """An ActivationQuant answering from a dict, as a quantization table would."""

    def __init__(self, table):
        self.table = table

    def of(self, name):
        from converters.tflite.quant import TensorQuant
        return TensorQuant(*self.table[name]) if name in self.table else None


def test_activation_quant_hook_writes_int8_tensors(tmp_path):
    """The full-int8 hook: tensors it names become int8 with its parameters, and the int8
    kernel runs on them (edgert quantizes the float feed and dequantizes the result)."""
    import edgert
    from tests.tflite.conftest import OpCase, build_model
    model, feeds = build_model(OpCase("relu", "Relu", [("x", np.linspace(-3, 3, 24, dtype=np.float32)
                                                        .reshape(2, 12), False)]))
    hook = _TableQuant({"x": (0.025, -8), "y0": (0.0125, -128)})
    res = convert_ir(model, tmp_path / "q.tflite", activation_quant=hook)
    sess = edgert.load(str(res.path), check="structure")
    assert sess.inputs[0].dtype == np.int8
    np.testing.assert_allclose(sess.inputs[0].quantization.scale, [0.025], rtol=1e-6)
    assert sess.outputs[0].quantization.zero_point == (-128,)
    assert _versions(res.path)["RELU"] == 2                     # the int8 kernel version
    out = sess.run(feeds)["y0"]
    np.testing.assert_allclose(out, np.maximum(feeds["x"], 0), atol=0.0125 + 0.025)


@pytest.mark.parametrize("xnnpack", [True, False])
def test_sparse_weight_hook_runs(xnnpack, tmp_path):
    """The sparsity hook: a CSR-encoded FULLY_CONNECTED weight (FC v8) written through
    ``SubgraphBuilder.const(sparsity=, shape=)`` runs on LiteRT's sparse kernel and on
    XNNPACK (which densifies it) and matches the dense product."""
    import edgert
    from converters.tflite.builder import SubgraphBuilder
    from converters.tflite.schema import options
    from converters.tflite.sparsity import csr_2d
    from converters.tflite.writer import serialize

    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 16)).astype(np.float32)
    w[rng.random(w.shape) < 0.7] = 0.0
    values, params = csr_2d(w)
    sg = SubgraphBuilder()
    x = sg.tensor("x", [2, 16], np.float32)
    wt = sg.const("w", values, sparsity=params, shape=[6, 16])
    b = sg.const("b", np.arange(6, dtype=np.float32))
    y = sg.tensor("y", [2, 6], np.float32)
    sg.op("FULLY_CONNECTED", [x, wt, b], [y], options("FullyConnected"), sparse_weight=True)
    path = tmp_path / "sparse.tflite"
    path.write_bytes(serialize(sg, [("x", x)], [("y", y)]))
    assert _versions(path)["FULLY_CONNECTED"] == 8
    assert len(values) == int((w != 0).sum()) < w.size
    feed = rng.standard_normal((2, 16)).astype(np.float32)
    sess = edgert.load(str(path), engine="litert", check="structure", xnnpack=xnnpack)
    np.testing.assert_allclose(sess.run({"x": feed})["y"], feed @ w.T + np.arange(6),
                               rtol=1e-5, atol=1e-5)


def test_float64_is_computed_in_float32(tmp_path):
    """PyTorch's TorchScript exporter turns ``(arange + 0.5) * stride`` into float64
    constants and Casts to DOUBLE, with a float64 graph output, though PyTorch computed
    float32. TFLite has no float64 kernels and refused the model; now every float64 value
    becomes float32, the report says so, and the result still verifies against the
    float64 source."""
    from converters import convert
    import edgert

    D = onnx.TensorProto.DOUBLE
    half = numpy_helper.from_array(np.array(0.5, np.float64), "half")
    stride = numpy_helper.from_array(np.array([8.0, 16.0, 32.0, 8.0], np.float64), "stride")
    nodes = [helper.make_node("Cast", ["x"], ["xd"], to=D),
             helper.make_node("Add", ["xd", "half"], ["a"]),
             helper.make_node("Mul", ["a", "stride"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2, 4])],
                          [helper.make_tensor_value_info("y", D, [2, 4])], [half, stride])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    rep = convert(model, "tflite", out_dir=tmp_path, name="f64")
    t = rep.target("tflite")
    assert t.verification.passed
    # xd, a, y and the two constants
    assert any(n.startswith("5 float64 value(s) computed in float32") for n in t.notes), t.notes
    x = np.array([[0, 1, 2, 3], [10, 11, 12, 13]], np.float32)
    with edgert.load(t.path) as s:
        y = s.run({"x": x})["y"]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, (x + 0.5) * np.array([8, 16, 32, 8], np.float32))
