"""The Session API on every engine: metadata, feeds, numerics, resizing,
quantized I/O, and errors that name the problem."""
from __future__ import annotations

import numpy as np
import pytest

import edgert
from edgert.errors import EngineUnavailableError, InputError, UnsupportedOptionError


def _onnx_reference(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def test_tflite_metadata_from_signature(models):
    s = edgert.load(models["tflite"])
    assert s.engine_name == "litert"
    assert [i.name for i in s.inputs] == ["x"]  # signature names, not tensor names
    assert [o.name for o in s.outputs] == ["y"]
    assert s.inputs[0].shape == (None, 12) and s.inputs[0].is_dynamic
    assert s.inputs[0].dtype == np.float32 and s.inputs[0].quantization is None


def test_tflite_numbers_and_feed_styles(models):
    w, b = models["fc_weights"]
    s = edgert.load(models["tflite"])
    x = np.random.default_rng(1).standard_normal((1, 12)).astype(np.float32)
    want = np.maximum(x @ w.T + b, 0)
    for feeds in ({"x": x}, [x], x):
        np.testing.assert_allclose(s.run(feeds)["y"], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.run(x=x)["y"], want, rtol=1e-5, atol=1e-5)
    # float64 is accepted for a float32 input (same kind), and resizing the batch works
    x3 = np.random.default_rng(2).standard_normal((3, 12))
    got = s.run(x3)["y"]
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, np.maximum(x3.astype(np.float32) @ w.T + b, 0), atol=1e-5)


def test_onnx_and_mnn_agree_with_reference(models):
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    want = _onnx_reference(models["onnx"], x)
    for fmt in ("onnx", "mnn"):
        s = edgert.load(models[fmt], threads=1)
        assert s.engine_name == {"onnx": "onnxruntime", "mnn": "mnn"}[fmt]
        got = s.run({"input": x})["logits"]
        assert got.shape == (2, 10)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_mnn_outputs_described_and_precision_switch(models):
    s = edgert.load(models["mnn"], precision="fp32")
    assert [o.name for o in s.outputs] == ["logits"]
    assert s.outputs[0].shape == (1, 10)
    assert s.inputs[0].layout == "NCHW"


def test_onnx_dynamic_batch_is_reported(models):
    s = edgert.load(models["onnx"])
    assert s.inputs[0].shape == ("batch", 3, 16, 16)
    assert s.run(np.zeros((4, 3, 16, 16), np.float32))["logits"].shape == (4, 10)


def test_quantized_io_float_by_default_raw_on_request(models):
    p = models["int8_params"]
    s = edgert.load(models["tflite_int8"])
    (inp,), (out,) = s.inputs, s.outputs
    assert inp.is_quantized and inp.dtype == np.int8
    assert inp.quantization.zero_point == (3,) and out.quantization.zero_point == (-5,)
    x = np.random.default_rng(4).uniform(-2, 2, (1, 6)).astype(np.float32)
    # the exact int8 computation, done by hand
    s_in, z_in = p["in_q"]
    s_out, z_out = p["out_q"]
    xq = np.clip(np.round(x / s_in) + z_in, -128, 127).astype(np.int32)
    acc = (xq - z_in) @ p["w_q"].astype(np.int32).T + p["b_q"]
    yq = np.clip(np.round(acc * (s_in * p["w_scale"] / s_out)) + z_out, -128, 127)
    raw = s.run(x, raw=True)["y"]
    assert raw.dtype == np.int8
    assert np.abs(raw.astype(np.int32) - yq).max() <= 1  # rounding-mode difference at most
    deq = s.run(x)["y"]
    assert deq.dtype == np.float32
    np.testing.assert_allclose(deq, (raw.astype(np.float32) - z_out) * s_out, rtol=1e-6)
    # integer feeds of the right dtype pass through untouched
    np.testing.assert_array_equal(s.run(xq.astype(np.int8), raw=True)["y"], raw)


@pytest.mark.parametrize("feeds, message", [
    ({}, "missing input 'x'"),
    ({"x": np.zeros((1, 12), np.float32), "z": np.zeros(1)}, "unknown input name(s) ['z']"),
    ({"x": np.zeros((1, 11), np.float32)}, "expects shape ?x12, got 1x11"),
    ({"x": np.zeros((12,), np.float32)}, "expects rank 2"),
    ({"x": np.zeros((1, 12), np.int32)}, "expects dtype float32, got int32"),
    ({"x": np.zeros((0, 12), np.float32)}, "is empty"),
    ([np.zeros((1, 12)), np.zeros((1, 12))], "2 arrays given but the model has 1 inputs"),
])
def test_bad_feeds_name_the_problem(models, feeds, message):
    s = edgert.load(models["tflite"])
    with pytest.raises(InputError) as err:
        s.run(feeds)
    assert message in str(err.value)


def test_mnn_wrong_shape_is_mnn_error_not_crash(models):
    s = edgert.load(models["mnn"])
    with pytest.raises(edgert.EngineError) as err:
        s.run(np.zeros((1, 4, 16, 16), np.float32))
    assert "MNN failed to run" in str(err.value)


def test_engine_choice_errors(models):
    with pytest.raises(EngineUnavailableError, match="cannot load tflite"):
        edgert.load(models["tflite"], engine="mnn")
    with pytest.raises(EngineUnavailableError, match="unknown engine 'tensorrt'"):
        edgert.load(models["tflite"], engine="tensorrt")
    with pytest.raises(UnsupportedOptionError, match="precision='fp16'"):
        edgert.load(models["tflite"], precision="fp16")
    with pytest.raises(UnsupportedOptionError, match="threads"):
        edgert.load(models["tflite"], threads=0)


def test_benchmark_protocol(models):
    s = edgert.load(models["tflite"], threads=1)
    r = s.benchmark(runs=20, warmup=2)
    assert r.runs == 20 and len(r.latencies_ms) == 20
    assert 0 < r.min_ms <= r.median_ms <= r.p90_ms <= r.p99_ms
    assert r.min_ms <= r.mean_ms and r.std_ms >= 0
    assert r.first_run_ms > 0 and r.init_ms > 0 and r.peak_rss_mb > 10
    assert r.engine == "litert" and r.threads == 1 and r.format == "tflite"
    d = r.to_dict(latencies=False)
    assert "latencies_ms" not in d and edgert.BenchmarkResult.from_dict(r.to_dict()) == r


def test_benchmark_min_seconds_extends_runs(models):
    s = edgert.load(models["tflite"], threads=1)
    r = s.benchmark(runs=3, warmup=0, min_seconds=0.05)
    assert r.runs > 3
    assert sum(r.latencies_ms) < 50 + 50  # ran about min_seconds, not unbounded
