"""The one quantization arithmetic (``edgert.quantization``): rounding and saturation as
each engine does them (checked against ONNX Runtime and LiteRT on ties), zero scales
(given: an error; derived from an empty range: 1.0, the same in every package)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgert import quantization as Q
from edgert.errors import EdgertError, QuantizationError
from edgert.tensors import QuantParams
from tests.conftest import require_module
from tests.runtime import model_builders as mb

# x / scale lands exactly on .5 ties (scale a power of two), then values that saturate
TIES = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -127.5, 1000.0, -1000.0])
EVEN = [0, 2, 2, 0, -2, -2, 126, -128, 127, -128]
AWAY = [1, 2, 3, -1, -2, -3, 127, -128, 127, -128]


def test_rounding_half_even_and_half_away_with_saturation():
    x = TIES * 0.25
    assert Q.quantize(x, 0.25, 0, -128, 127).tolist() == EVEN
    assert Q.quantize(x, 0.25, 0, -128, 127, rounding="half_away").tolist() == AWAY
    # uint8 with a zero point: ties move with it, saturation at 0 and 255
    assert Q.quantize(np.array([0.25, -0.25, 0.75, 1e3, -1e3]), 0.5, 128, 0, 255).tolist() \
        == [128, 128, 130, 255, 0]
    # TFLite's narrow weight range
    assert Q.quantize(np.array([-1.0, 1.0]), 1 / 127.5, 0, -127, 127).tolist() == [-127, 127]
    with pytest.raises(ValueError, match="rounding"):
        Q.quantize(x, 0.25, 0, -128, 127, rounding="nearest")


def test_per_channel_axis_and_exact_round_trip():
    scale, zp = [0.5, 0.25, 0.125], [0, 1, -1]
    q = np.arange(-6, 6, dtype=np.int64).reshape(2, 3, 2)
    x = Q.dequantize(q, scale, zp, axis=1)
    assert x[0, 1, 0] == (q[0, 1, 0] - 1) * 0.25 and x.dtype == np.float32
    for axis in (1, -2):                      # a negative axis names the same dim
        assert np.array_equal(Q.quantize(x, scale, zp, -128, 127, axis=axis), q)
    qp = QuantParams(tuple(scale), tuple(zp), axis=1)
    assert np.array_equal(qp.quantize(x, np.int8), q.astype(np.int8))
    assert np.array_equal(qp.dequantize(q.astype(np.int8)), x)


@pytest.mark.parametrize("bad", [0.0, -0.5, math.nan, math.inf])
def test_a_given_scale_that_is_not_positive_is_an_error(bad):
    with pytest.raises(QuantizationError, match="not a positive finite number"):
        Q.quantize(np.ones(3), bad, 0, -128, 127)
    with pytest.raises(QuantizationError):
        Q.dequantize(np.ones(3, np.int8), bad, 0)
    with pytest.raises(QuantizationError, match=r"\(channel 1\)"):
        Q.quantize(np.ones((2, 2)), [0.5, bad], [0, 0], -128, 127, axis=0)
    qp = QuantParams((bad,), (0,))
    with pytest.raises(EdgertError):                  # the session's feed path
        qp.quantize(np.ones(3, np.float32), np.int8)


def test_an_empty_range_derives_scale_one():
    assert Q.asymmetric_params(0.0, 0.0, -128, 127) == (1.0, 0)
    assert Q.asymmetric_params(0.0, 0.0, 0, 255) == (1.0, 0)
    assert Q.asymmetric_params(-1e-40, 1e-40, -128, 127) == (1.0, 0)   # below a normal float32
    assert Q.symmetric_scale(0.0, 0.0, -127, 127) == 1.0
    scales = Q.symmetric_scales(np.array([[1.27, -2.54], [0.0, 0.0]]), 0, 127.0)
    assert scales.tolist() == [2.54 / 127, 1.0]
    # a real range: ends on the range ends, zero point rounded so 0.0 is exact
    scale, zp = Q.asymmetric_params(-1.0, 3.0, -128, 127)
    assert scale == 4.0 / 255 and zp == round(-128 + 1.0 / scale) == -64
    assert Q.quantize(np.array([0.0]), scale, zp, -128, 127).tolist() == [zp]


def test_every_package_derives_the_same_scale_for_a_zero_channel():
    from converters.tflite.quant import symmetric_int8
    from quant_tables.qparams import per_channel_symmetric, qparams_from_range

    w = np.zeros((3, 4), np.float32)
    w[0] = [0.5, -1.0, 0.25, 0.0]
    assert per_channel_symmetric(w, 0)[1:].tolist() == [Q.EMPTY_RANGE_SCALE] * 2
    q, scales = symmetric_int8(w, 0)
    assert scales[1:].tolist() == [Q.EMPTY_RANGE_SCALE] * 2 and not q[1:].any()
    assert qparams_from_range(0.0, 0.0, "int8") == (Q.EMPTY_RANGE_SCALE, 0)
    assert qparams_from_range(0.0, 0.0, "uint8", symmetric=True) == (Q.EMPTY_RANGE_SCALE, 128)


def test_tflite_weights_keep_float32_arithmetic():
    """The writer's int8 weights: float32 scales and quotients, as before the shared module
    (float64 quotients round differently near .5 ties; the files must not change)."""
    from converters.tflite.quant import symmetric_int8

    w = np.random.default_rng(3).standard_normal((16, 3, 3, 8)).astype(np.float32)
    q, scales = symmetric_int8(w, 0)
    ref_s = (np.abs(w).reshape(16, -1).max(axis=1) / np.float32(127.0)).astype(np.float32)
    ref_q = np.clip(np.rint(w / ref_s.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
    assert scales.dtype == np.float32 and np.array_equal(scales, ref_s)
    assert np.array_equal(q, ref_q)


def test_onnxruntime_quantizelinear_rounds_half_to_even():
    require_module("onnxruntime")
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    for dtype, zp, lo, hi in (("int8", 0, -128, 127), ("uint8", 128, 0, 255)):
        graph = helper.make_graph(
            [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])], "q",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(TIES)])],
            [helper.make_tensor_value_info("q", helper.np_dtype_to_tensor_dtype(
                np.dtype(dtype)), [len(TIES)])],
            [numpy_helper.from_array(np.array(0.25, np.float32), "s"),
             numpy_helper.from_array(np.array(zp, dtype), "z")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = (TIES * 0.25).astype(np.float32)
        got = sess.run(None, {"x": x})[0].astype(np.int64)
        assert got.tolist() == Q.quantize(x, 0.25, zp, lo, hi).tolist()
        assert got.tolist() != Q.quantize(x, 0.25, zp, lo, hi, rounding="half_away").tolist()
        onnx.checker.check_model(model)


@pytest.mark.parametrize("xnnpack,rounding", [(True, "half_even"), (False, "half_away")])
def test_litert_quantize_rounds_as_its_kernel_does(tmp_path, xnnpack, rounding):
    """XNNPACK (LiteRT's default) rounds half to even; the built-in QUANTIZE kernel rounds
    half away from zero outside its 8-wide vector blocks, so 6 elements (all in the scalar
    tail, on x86 and ARM) show it."""
    require_module("ai_edge_litert")
    import edgert

    x = (np.array([0.5, 1.5, 2.5, -0.5, 130.0, -130.0]) * 0.5).astype(np.float32)
    for dtype, zp, lo, hi in (("int8", -3, -128, 127), ("uint8", 128, 0, 255)):
        path = str(tmp_path / f"quantize_{dtype}.tflite")
        mb.quantize_tflite(path, len(x), 0.5, zp, dtype)
        sess = edgert.load(path, engine="litert", check="structure", xnnpack=xnnpack)
        got = sess.run({"x": x}, raw=True)["q"].astype(np.int64).tolist()
        assert got == Q.quantize(x, 0.5, zp, lo, hi, rounding=rounding).tolist(), dtype
        other = "half_away" if rounding == "half_even" else "half_even"
        assert got != Q.quantize(x, 0.5, zp, lo, hi, rounding=other).tolist()
