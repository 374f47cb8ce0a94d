"""Verification inside convert(): the real engines in a crash-isolated child, several
named input sets, ONNX Runtime's second opinion, values the user fixes, a -1 dim.

ONNX's own node tests (tests/conformance/cases.py) provide the cases where an engine
crashes (MNN on a 1-D MatMul), hangs (MNN on OneHot) or where ONNX Runtime is wrong
(Resize align_corners downsampling) or cannot run (a batchwise GRU)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import edgert
from converters import convert
from converters.flow.isolation import default_timeout
from edgert.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _case(name: str, variant: str = "constants"):
    from tests.conformance.cases import load_cases

    return next(c for c in load_cases([name]) if c.variant == variant)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def near_zero_model() -> onnx.ModelProto:
    """Sigmoid(c) - Sigmoid(c (1 + 2^-16)) after a conv: outputs all near 1e-6, computed
    from values near 0.5 whose ulps are 6e-8 (PP-OCR's DB-net in miniature)."""
    w = (np.random.default_rng(0).standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s1"]),
             helper.make_node("Mul", ["c", "k"], ["ck"]),
             helper.make_node("Sigmoid", ["ck"], ["s2"]),
             helper.make_node("Sub", ["s1", "s2"], ["maps"])]
    return _model(nodes, [helper.make_tensor_value_info("x", T.FLOAT, [1, 4, 16, 16])],
                  [helper.make_tensor_value_info("maps", T.FLOAT, [1, 8, 16, 16])],
                  [numpy_helper.from_array(w, "w"),
                   numpy_helper.from_array(np.array(1 + 2 ** -16, np.float32), "k")])


def if_on_sample_rate() -> onnx.ModelProto:
    """y = 2x when sr == 16000; otherwise a Gather out of range, which fails at run time:
    a model that only runs with the right setting (Silero VAD's sr picks a branch)."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y_then"])], "then", [],
                             [helper.make_tensor_value_info("y_then", T.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Gather", ["x", "bad"], ["y_else"], axis=1)],
                              "else", [], [helper.make_tensor_value_info("y_else", T.FLOAT,
                                                                         [1, 4])])
    nodes = [helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
             helper.make_node("If", ["is16k"], ["y"], then_branch=then, else_branch=other,
                              name="branch")]
    return _model(nodes, [helper.make_tensor_value_info("x", T.FLOAT, [1, 4]),
                          helper.make_tensor_value_info("sr", T.INT64, [])],
                  [helper.make_tensor_value_info("y", T.FLOAT, [1, 4])],
                  [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
                   numpy_helper.from_array(np.array(16000, np.int64), "rate"),
                   numpy_helper.from_array(np.array([0, 1, 2, 99], np.int64), "bad")])


def paddle_batch_model() -> onnx.ModelProto:
    """A conv whose input batch is declared ``dim_value: -1``, as Paddle exports write it."""
    w = (np.random.default_rng(1).standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
               [helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
               [helper.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])],
               [numpy_helper.from_array(w, "w")])
    for v in (m.graph.input[0], m.graph.output[0]):
        v.type.tensor_type.shape.dim[0].dim_value = -1
    return m


def test_a_near_zero_output_converted_exactly_passes_on_both_targets(tmp_path):
    rep = convert(near_zero_model(), ("mnn", "tflite"), out_dir=tmp_path, name="dbnet_like")
    assert rep.ok, rep.summary()
    for t in rep.targets:
        [o] = t.verification.outputs
        assert o.max_abs <= 2 ** -20 and o.cosine_waived
    # the old cosine-only gate failed it: at least one input set is below 0.99999
    assert min(o.cosine for t in rep.targets for o in t.verification.outputs) < 0.99999


def test_verification_runs_every_target_on_every_set_in_child_processes(tmp_path):
    rep = convert(near_zero_model(), ("mnn", "tflite"), out_dir=tmp_path, name="m",
                  verify_sets=4)
    runs = [t.details["verification_run"] for t in rep.targets]
    # each target is run as soon as it is written, in a child of its own (never the caller)
    assert os.getpid() not in {r["child_pid"] for r in runs} and all(r["child_pid"] for r in runs)
    assert all(r["outcome"] == "ran" for r in runs)
    assert all(len(t.verification.input_sets) == 4 for t in rep.targets)
    v = rep.target("mnn").verification
    assert v.input_sets == [f"seeded N(0,1), seed {k}" for k in range(4)]
    assert v.reference == "ONNX Runtime on the source"


def test_sets_the_source_cannot_run_are_left_out_of_every_target(tmp_path):
    """Each target is run on the input sets as soon as it is written, before the reference
    says which sets the source can run: seeded sets whose values are out-of-range indices
    (Gather of Cast(x * 100) into a table of 2 rows) are dropped, and each target is
    compared on the given set alone (run again on it), not on sets the source never ran."""
    table = numpy_helper.from_array(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), "table")
    hundred = numpy_helper.from_array(np.array(100.0, np.float32), "hundred")
    m = _model([helper.make_node("Mul", ["x", "hundred"], ["xs"]),
                helper.make_node("Cast", ["xs"], ["idx"], to=T.INT64),
                helper.make_node("Gather", ["table", "idx"], ["g"]),
                helper.make_node("Relu", ["g"], ["y"])],
               [helper.make_tensor_value_info("x", T.FLOAT, [1, 4])],
               [helper.make_tensor_value_info("y", T.FLOAT, [1, 4, 2])], [table, hundred])
    given = {"x": np.array([[0.0, 0.01, 0.0, 0.01]], np.float32)}
    rep = convert(m, ("mnn", "tflite"), out_dir=tmp_path, name="gather", verify_inputs=given)
    assert rep.ok, rep.summary()
    assert any("seeded input sets dropped" in n for n in rep.source["notes"]), rep.source
    for t in rep.targets:
        assert t.verification.input_sets == ["given: given arrays"], t.target
        [o] = t.verification.outputs
        assert o.max_abs == 0.0


def _raw_mnn(case, tmp_path) -> str:
    """The case written by MNN's converter as it is: edgert's own MNN path rewrites or
    refuses these forms (converters/mnn/wrong_ops.py) because MNN crashes or hangs on them."""
    from converters.mnn.backend import run_converter

    src, out = tmp_path / "raw.onnx", str(tmp_path / "raw.mnn")
    onnx.save(case.model, str(src))
    run_converter(["mnnconvert", "-f", "ONNX", "--modelFile", str(src), "--MNNModel", out,
                   "--bizCode", "edgert"], out)
    return out


def test_an_engine_crash_is_the_targets_error_not_the_callers(tmp_path):
    """MNN's runtime dies of SIGFPE running an LpPool as its converter writes it (every
    time; its 1-D MatMul corrupts the heap, which glibc catches only now and then, so it
    cannot be this test's crash): the verification child dies, the caller gets the
    target's error."""
    from converters.flow.isolation import RunJob, run_isolated
    from converters.flow.targets import run_options

    case = _case("test_lppool_2d_default", "inputs")
    path = _raw_mnn(case, tmp_path)
    [out] = run_isolated([RunJob("mnn", path, [case.feeds], run_options(path))])
    assert out.outputs is None and out.error_type == "crash", out
    assert "the engine crashed (SIGFPE)" in out.error
    assert out.child_pid not in (None, os.getpid())
    # and through convert(): the same form is rewritten and runs
    rep = convert(case.model, ("mnn",), out_dir=tmp_path / "c", verify_inputs=case.feeds)
    assert rep.target("mnn").details["verification_run"]["outcome"] == "ran"
    assert rep.target("mnn").verification.passed


def test_an_engine_hang_is_stopped_at_the_deadline(tmp_path):
    """MNN hangs on OneHot; the child is killed at the deadline."""
    from converters.flow.isolation import RunJob, run_isolated
    from converters.flow.targets import run_options

    case = _case("test_onehot_without_axis", "inputs")
    path = _raw_mnn(case, tmp_path)
    start = time.monotonic()
    [out] = run_isolated([RunJob("mnn", path, [case.feeds], run_options(path), timeout_s=3)])
    assert out.outputs is None and out.error_type == "hang", out
    assert "did not finish loading and running 1 input set(s) within 3 s" in out.error
    assert time.monotonic() - start < 20      # killed at the deadline, not MNN's 300 s


def test_the_default_deadline_scales_with_the_model(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"\0" * 1000)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 8_000_000)
    assert default_timeout(str(small), 4) == pytest.approx(10.002, abs=1e-3)
    assert default_timeout(str(big), 4) == pytest.approx(26.0)
    assert default_timeout(str(big), 40) == 60.0


def test_where_onnx_runtime_is_wrong_the_evaluator_is_the_reference(tmp_path):
    """ONNX Runtime's align_corners downsampling is not the spec's: the evaluator is the
    reference, says why, and both targets (Resize by its decomposition, as the spec
    computes it) pass against it."""
    case = _case("test_resize_downsample_scales_linear_align_corners")
    rep = convert(case.model, ("mnn", "tflite"), out_dir=tmp_path, verify_inputs=case.feeds,
                  raise_on_error=False)
    for t in rep.targets:
        assert t.verification.passed, t.verification.failures
        assert t.verification.reference == "ONNX's reference evaluator (onnx.reference)"
        got = edgert.load(t.path).run(case.feeds)
        np.testing.assert_allclose(np.asarray(list(got.values())[0]),
                                   list(case.expected.values())[0], rtol=1e-5, atol=1e-5)
    notes = " ".join(rep.source["notes"])
    assert "ONNX Runtime and ONNX's reference evaluator disagree at node" in notes
    assert "(Resize) (ONNX Runtime's linear Resize with align_corners departs from the " \
           "spec when downsampling; max abs difference 0.857)" in notes


def test_where_onnx_runtime_is_suspect_but_agrees_its_outputs_stand(tmp_path):
    case = _case("test_resize_upsample_scales_linear_align_corners")
    rep = convert(case.model, ("tflite",), out_dir=tmp_path, verify_inputs=case.feeds)
    assert rep.ok and rep.target("tflite").verification.reference == \
        "ONNX Runtime on the source"
    assert any("reference evaluator agrees with it" in n for n in rep.source["notes"])


def test_where_onnx_runtime_cannot_run_the_evaluator_does(tmp_path):
    case = _case("test_gru_batchwise")
    rep = convert(case.model, ("tflite",), out_dir=tmp_path, verify_inputs=case.feeds)
    v = rep.target("tflite").verification
    assert rep.ok and v.reference == "ONNX's reference evaluator (onnx.reference)"
    assert any("because ONNX Runtime cannot run the source" in n for n in rep.source["notes"])


def test_a_fixed_input_value_reaches_every_set(tmp_path):
    model = if_on_sample_rate()
    with pytest.raises(InputError, match="the source model fails on the verification inputs"):
        convert(model, ("mnn",), out_dir=tmp_path / "random")
    rep = convert(model, ("mnn",), out_dir=tmp_path / "fixed", input_values={"sr": 16000})
    assert rep.ok, rep.summary()
    assert rep.source["input_values"] == {"sr": "16000"}
    assert len(rep.target("mnn").verification.input_sets) == 3
    with pytest.raises(InputError, match="input value given for unknown input"):
        convert(model, ("mnn",), out_dir=tmp_path / "typo", input_values={"rate": 16000})
    with pytest.raises(InputError, match="'sr' is int64; the value given has fractions"):
        convert(model, ("mnn",), out_dir=tmp_path / "frac", input_values={"sr": 0.5})


def test_cli_input_values_and_precision_line(tmp_path):
    path = tmp_path / "if.onnx"
    onnx.save(if_on_sample_rate(), str(path))
    np.save(tmp_path / "sr.npy", np.array(16000, np.int64))
    env = dict(os.environ, PYTHONPATH=REPO)
    for value in ("16000", str(tmp_path / "sr.npy")):
        proc = subprocess.run([sys.executable, "-m", "edgert", "convert", str(path), "--to",
                               "mnn", "--out", str(tmp_path / "o"), "--input", f"sr={value}",
                               "--overwrite"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "input sr fixed at 16000" in proc.stdout
        assert "precision: fp32: a float model" in proc.stdout
        assert "verification PASSED" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "edgert", "convert", str(path), "--out",
                           str(tmp_path / "o"), "--input", "sr"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "bad --input 'sr': write NAME=VALUE" in proc.stderr


def test_a_torch_setting_input_is_given_by_value(tmp_path):
    torch = pytest.importorskip("torch")

    class Vad(torch.nn.Module):
        def forward(self, x, sr):
            return torch.where(sr == 16000, x * 2, x - 1)

    with pytest.raises(InputError, match="--input NAME=VALUE"):
        convert(Vad(), ("tflite",), out_dir=tmp_path / "a", input_shapes={"x": (1, 8)})
    rep = convert(Vad(), ("tflite",), out_dir=tmp_path / "b", input_shapes={"x": (1, 8)},
                  input_values={"sr": 16000}, exporter="torchscript")
    assert rep.ok, rep.summary()
    assert rep.source["input_values"] == {"sr": "16000"}
    assert [i["dtype"] for i in rep.source["inputs"]] == ["float32", "int64"]


def test_a_minus_one_dim_is_dynamic_and_input_shape_fixes_it(tmp_path):
    model = paddle_batch_model()
    rep = convert(model, ("mnn", "tflite"), out_dir=tmp_path / "dyn")
    assert rep.ok, rep.summary()
    assert any("dim 0 is declared -1 in the file; read as dynamic" in n
               for n in rep.source["notes"])
    assert rep.source["inputs"][0]["shape"][0] == "x_dim0"
    rep = convert(model, ("tflite",), out_dir=tmp_path / "fixed",
                  input_shapes={"x": (2, 3, 8, 8)})
    assert rep.ok and rep.source["inputs"][0]["shape"] == [2, 3, 8, 8]


def test_calibration_feeds_carry_the_fixed_values_and_hold_some_out():
    from converters.flow.inputs import split_calibration

    x = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    specs = [("x", ("batch", 4), np.float32), ("sr", (), np.int64)]
    fixed = {"sr": np.array(16000, np.int64)}
    data, held, note = split_calibration({"x": x}, specs, fixed)
    feeds = list(data)                      # what the calibration iterates (re-iterable)
    assert len(feeds) == 1 and feeds[0]["x"].shape == (8, 4)       # joined into a batch
    assert all(f["sr"] == 16000 for f in feeds + [h.feeds for h in held])
    assert [h.name for h in held] == ["held-out calibration sample 3 of 10",
                                      "held-out calibration sample 8 of 10"]
    assert np.array_equal(held[0].feeds["x"], x[2:3]) and list(data)[0]["x"].shape == (8, 4)
    assert "8 of 10 feeds calibrate, 2 held out for verification" in note


def test_an_engine_refusal_in_the_child_is_an_error_not_a_crash(tmp_path):
    from converters.flow.isolation import RunJob, run_isolated

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    [out] = run_isolated([RunJob("tflite", str(bad), [{"x": np.zeros((1, 4), np.float32)}])])
    assert out.outputs is None and out.error_type == "ModelFileError"
    assert out.error.startswith("tflite: ") and out.child_pid not in (None, os.getpid())
