"""Hostile and unlucky inputs to the runtime: every problem an edgert error that names
it, within bounded memory and time.

Feeds: NaN/Inf where they cannot be computed with, views far larger than memory,
ints that would wrap, things that are not arrays. Files: names that are not UTF-8,
tensors declared larger than memory, external data that is missing or escapes,
damaged MNN constants and convolutions. Time: loops that never end, in the isolated
first load and in ``run(timeout=)``. Judgement of the isolated load: only a clean
success passes.
"""
from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest

import edgert
from edgert import limits
from edgert.errors import InputError, ModelFileError, RunTimeoutError
from edgert.flatbuf import root
from tests.fuzz import crafted


# -- feeds ----------------------------------------------------------------------------

def test_nan_into_a_quantized_input_is_refused_unless_allowed(models):
    s = edgert.load(models["tflite_int8"])
    x = np.zeros((1, 6), np.float32)
    x[0, 2] = np.nan
    with pytest.raises(InputError, match=r"input 'x' holds NaN or Inf.*it is quantized"):
        s.run(x)
    x[0, 2] = np.inf
    with pytest.raises(InputError, match="allow_nonfinite=True"):
        s.run(x)
    out = s.run(x, allow_nonfinite=True)["y"]      # the caller asked for it: it runs
    assert out.shape == (1, 4)


def test_nan_into_mnn_is_refused_but_onnx_runtime_computes_with_it(models):
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    x[0, 1, 4, 4] = np.nan
    mnn = edgert.load(models["mnn"])
    with pytest.raises(InputError, match="mnn does not compute with them"):
        mnn.run(x)
    # MNN turns NaN into huge finite numbers: what allow_nonfinite=True lets through
    assert np.isfinite(mnn.run(x, allow_nonfinite=True)["logits"]).all()
    ort = edgert.load(models["onnx"])
    assert np.isnan(ort.run(x)["logits"]).all()      # NaN propagates: nothing to refuse


def test_a_zero_stride_view_larger_than_memory_is_an_input_error(models):
    """2^28 rows of 12 floats is 12 GiB once contiguous; as a view it is 48 bytes."""
    s = edgert.load(models["tflite"])
    view = np.broadcast_to(np.ones((1, 12), np.float32), (1 << 28, 12))
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"input 'x' of shape 268435456x12 float32 needs "
                                         r"12.0 GiB, over the limit"):
        s.run(view)
    assert time.perf_counter() - t0 < 5


def test_memory_limit_is_derived_from_the_machine_and_overridable(monkeypatch):
    total, _ = limits.machine_memory()
    monkeypatch.delenv(limits.MEMORY_ENV, raising=False)
    assert 1 << 30 <= limits.memory_limit() <= max(total // 2, 1 << 30)
    monkeypatch.setenv(limits.MEMORY_ENV, "3G")
    assert limits.memory_limit() == 3 << 30 and limits.tensor_budget() == (3 << 30) // 4
    monkeypatch.setenv(limits.MEMORY_ENV, "lots")
    with pytest.raises(edgert.UnsupportedOptionError, match="EDGERT_MAX_MEMORY"):
        limits.memory_limit()


def test_ints_that_would_wrap_and_things_that_are_not_arrays(models):
    s = edgert.load(models["tflite_int8"])
    raw = np.array([[1, 2, 300, 4, 5, 6]], np.int64)      # int8 would wrap 300 to 44
    with pytest.raises(InputError, match=r"input 'x' expects int8; its values 1..300 do not"):
        s.run(raw)
    np.testing.assert_array_equal(s.run(raw.clip(-128, 127), raw=True)["y"],
                                  s.run(raw.clip(-128, 127).astype(np.int8), raw=True)["y"])
    f = edgert.load(models["tflite"])
    with pytest.raises(InputError, match="input 'x' is not an array"):
        f.run([[[1.0, 2.0], [3.0]]])
    with pytest.raises(InputError, match="input 'x' expects dtype float32, got str"):
        f.run(np.array([["a"] * 12]))


# -- files ----------------------------------------------------------------------------

@pytest.mark.parametrize("check", ["structure", "isolated"])
@pytest.mark.parametrize("builder, message", [
    (crafted.tflite_huge_input, r"tensor 'x' \(subgraph 0, tensor 0\) declares shape "
                                r"268435456x6 float32, 6.0 GiB, over the limit"),
    (crafted.tflite_bad_utf8_names, "subgraph 0 tensor 0: its name is not UTF-8"),
])
def test_tflite_files_the_structure_check_catches(tmp_path, check, builder, message):
    path = builder(str(tmp_path / "m.tflite"))
    with pytest.raises(ModelFileError, match=message):
        edgert.load(path, check=check)


@pytest.mark.parametrize("builder, message", [
    (crafted.onnx_bad_utf8_op, "ONNX Runtime could not load .*can't decode"),
    (crafted.onnx_bad_utf8_dim, "cannot describe this model's inputs and outputs: a name"),
    (lambda p: crafted.onnx_external_data(p, "weights.bin"), "External data path does not exist"),
    (lambda p: crafted.onnx_external_data(p, "../../../../etc/passwd"), "escapes model directory"),
])
def test_onnx_file_problems_are_model_file_errors(tmp_path, builder, message):
    path = builder(str(tmp_path / "m.onnx"))
    with pytest.raises(ModelFileError, match=message):
        edgert.load(path, check="structure")


def _mnn_op(data: bytes, name: str):
    net = root(data)
    return next(op for op in net.tables(3) if op.string(3) == name)


def _patch(data: bytes, at: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into("<" + fmt, b, at, value)
    return bytes(b)


def _mnn_mutants(data: bytes):
    """The damage seen to crash MNN in tests/fuzz, made on purpose (name -> (bytes, message))."""
    net = root(data)
    ops = net.tables(3)
    const = next(op for op in ops if op.scalar(1, "B") == 7 and op.table(2).has(2))
    conv = next(op for op in ops if op.scalar(1, "B") == 9)
    flatten = next(op for op in ops if op.scalar(5, "i") == 28)
    convert = next(op for op in ops if op.scalar(5, "i") == 129)
    inp = next(op for op in ops if op.scalar(5, "i") == 34).table(2)
    common = conv.table(2).table(0)
    blob = const.table(2)
    dims = blob._indirect(0)
    pool3d = next(op for op in ops if op.scalar(1, "B") == 79).table(2)
    return {
        "const dtype": (_patch(data, blob._field(2), "i", 0),
                        "its constant has an unknown data type 0"),
        "const dims": (_patch(data, dims + 4, "i", 2049),
                       "its constant of shape \\[2049\\] needs 2049 values"),
        "conv kernel": (_patch(data, common._field(3), "i", 0), "convolution kernelY is 0"),
        "op type": (_patch(data, flatten._field(5), "i", 3836), "has an unknown type 3836"),
        "param type": (_patch(data, const._field(1), "B", 0),
                       "of type 11 has parameters of type 0"),
        "param owner": (_patch(data, const._field(5), "i", 43),
                        "of type 43 has parameters of type 7, which only ops of types"),
        "no inputs": (_patch(data, convert._indirect(0), "I", 0), "of type 129 has no inputs"),
        "huge input": (_patch(data, inp._indirect(0) + 4 * 3, "i", 1 << 30),
                       "the input declares shape .* over the limit"),
        "field past table": (_patch(data, pool3d._vt + pool3d._vt_len - 2, "H", 200),
                             "a field of the table at .* lies outside the table"),
    }


def test_mnn_damage_that_crashed_it_is_caught_in_python(models, tmp_path):
    data = open(models["mnn"], "rb").read()
    for name, (mutant, message) in _mnn_mutants(data).items():
        p = tmp_path / (name.replace(" ", "_") + ".mnn")
        p.write_bytes(mutant)
        with pytest.raises(ModelFileError, match=message):
            edgert.load(str(p), check="structure")


# -- time -----------------------------------------------------------------------------

def test_probe_deadline_grows_with_the_model_and_stays_well_under_300s(monkeypatch):
    monkeypatch.delenv(limits.TIMEOUT_ENV, raising=False)
    small, big = limits.probe_timeout(10_000), limits.probe_timeout(200_000_000)
    assert 15 <= small < 30 and small < big < 60


@pytest.mark.parametrize("builder, name", [(crafted.tflite_while_forever, "w.tflite"),
                                           (crafted.onnx_loop_forever, "l.onnx")])
def test_a_loop_that_never_ends(tmp_path, monkeypatch, builder, name):
    """The isolated load gives up at its deadline; a structure-checked session's run
    with a deadline raises RunTimeoutError and leaves no process behind."""
    path = builder(str(tmp_path / name))
    monkeypatch.setenv(limits.TIMEOUT_ENV, "3")
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match="did not finish loading and running the model "
                                             "once within 3 s"):
        edgert.load(path)
    assert time.perf_counter() - t0 < 30
    s = edgert.load(path, check="structure")
    t0 = time.perf_counter()
    with pytest.raises(RunTimeoutError, match="did not finish within 1 s"):
        s.run(s.random_inputs(0), timeout=1)
    assert time.perf_counter() - t0 < 20
    assert s._runner is not None and s._runner.pid is None   # the worker was killed
    s.close()


def test_run_with_a_deadline_gives_the_same_numbers(models):
    for fmt in ("tflite", "tflite_int8", "onnx", "mnn"):
        s = edgert.load(models[fmt])
        feeds = s.random_inputs(3)
        want = s.run(feeds)
        got = s.run(feeds, timeout=60)
        got2 = s.run(feeds, timeout=60)            # the worker is reused
        pid = s._runner.pid
        assert pid is not None
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
            np.testing.assert_array_equal(got2[name], want[name])
        s.close()
        assert s._runner is None
        with pytest.raises(OSError):      # closing the session stopped its worker
            os.kill(pid, 0)


# -- the isolated load judges every outcome -----------------------------------------

def test_a_child_that_runs_out_of_memory_is_a_model_file_error(tmp_path, monkeypatch):
    """A model whose one run needs 512 MiB, checked under a 384 MiB limit: the child's
    allocation fails inside ONNX Runtime, and that is the file's verdict (before, a
    child that exited with an exception passed and the caller loaded the file)."""
    from onnx import TensorProto, helper

    path = crafted._save_onnx(str(tmp_path / "big.onnx"), [
        helper.make_node("Constant", [], ["s"], value=helper.make_tensor(
            "s", TensorProto.INT64, [1], [128 << 20])),
        helper.make_node("Expand", ["x", "s"], ["e"]),
        helper.make_node("ReduceMax", ["e"], ["y"], keepdims=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    monkeypatch.setenv(limits.MEMORY_ENV, "384M")
    with pytest.raises(ModelFileError, match="memory limit of 384.0 MiB"):
        edgert.load(path)
    monkeypatch.setenv(limits.MEMORY_ENV, "4G")      # with room, the same file passes
    s = edgert.load(path, check="isolated")
    assert s.run(np.array([2.5], np.float32))["y"][0] == 2.5


def test_a_child_that_cannot_load_the_engine_fails_the_file(monkeypatch, tmp_path):
    """Under a limit too small to import ONNX Runtime the child's load fails with a
    MemoryError: the file does not pass (and is not cached as passed)."""
    from tests.runtime import model_builders as mb

    p = tmp_path / "fresh.onnx"
    mb.conv_classifier_onnx(str(p), seed=11)        # weights no other test has cached
    monkeypatch.setenv(limits.MEMORY_ENV, "48M")
    with pytest.raises(ModelFileError, match="more than the memory limit of 48.0 MiB"):
        edgert.load(str(p))
    monkeypatch.delenv(limits.MEMORY_ENV)
    assert edgert.load(str(p)).run(np.zeros((1, 3, 16, 16), np.float32))["logits"].shape == (1, 10)


@pytest.mark.parametrize("returncode, report, verdict", [
    (0, {"ok": True}, None),
    (1, {}, "exited with status 1: Traceback / MemoryError"),     # died before its report
    (0, {}, "exited with status 0"),                                # no report at all
    (-11, {}, "crashed \\(SIGSEGV\\)"),
    (0, {"error": "EngineError", "message": "no such op"}, "no such op"),
])
def test_only_a_clean_success_passes(returncode, report, verdict):
    import subprocess

    from edgert.probe import _judge

    proc = subprocess.CompletedProcess([], returncode, b"", b"Traceback\nMemoryError\n")
    if verdict is None:
        _judge("m.onnx", "onnxruntime", proc, report, 1 << 30)
    else:
        with pytest.raises(edgert.EdgertError, match=verdict):
            _judge("m.onnx", "onnxruntime", proc, report, 1 << 30)
