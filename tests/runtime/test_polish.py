"""Runtime polish as a user meets it (issue 19): one MNN load per engine instance,
dynamic dims reported alike by every engine, layout mistakes named before the engine
sees them, top-k that agrees with argmax, MNN quantization in `edgert info`, and the
bench's word on int8 speed."""
from __future__ import annotations

import json

import numpy as np
import pytest

import edgert


def test_mnn_file_is_loaded_once_per_session(models, monkeypatch):
    """The module is parsed once in this process (the isolated check's child is apart);
    counted on MNN's own loader, which still does the work."""
    import MNN

    real = MNN.nn.load_module_from_file
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(MNN.nn, "load_module_from_file", counting)
    s = edgert.load(models["mnn"], check="structure")
    x = np.ones((1, 3, 16, 16), np.float32)
    assert s.run(x)["logits"].shape == (1, 10)
    assert calls == [models["mnn"]]


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """conv_classifier (dynamic batch) converted by edgert: fp32 both targets (TFLite with
    NHWC inputs too), int8 and int8 weights for MNN."""
    from converters import convert
    from tests.runtime import model_builders as mb

    d = tmp_path_factory.mktemp("polish")
    src = str(d / "conv.onnx")
    mb.conv_classifier_onnx(src)
    rng = np.random.default_rng(0)
    cal = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(8)]
    out = {}
    for tag, kwargs in (("fp32", dict(targets="mnn,tflite", precision="fp32")),
                        ("nhwc", dict(targets="tflite", precision="fp32", io_layout="nhwc")),
                        ("int8", dict(targets="mnn", precision="int8", calibration_data=cal)),
                        ("int8_weights", dict(targets="mnn", precision="int8_weights"))):
        report = convert(src, out_dir=str(d / tag), verify=False, **kwargs)
        out[tag] = {t.target: str(t.path) for t in report.targets}
    return out


def test_dynamic_batch_reported_alike_by_every_engine(converted):
    """MNN's converter fixes a dynamic batch to 1 in the file's Input op; edgert records
    the axis (bizCode) and every engine reports it as dynamic."""
    mnn = edgert.load(converted["fp32"]["mnn"])
    tfl = edgert.load(converted["fp32"]["tflite"])
    assert mnn.inputs[0].shape == tfl.inputs[0].shape == (None, 3, 16, 16)
    assert repr(mnn).endswith("(input:?x3x16x16)>")
    assert mnn.outputs[0].shape == tfl.outputs[0].shape == (None, 10)
    x = np.random.default_rng(3).standard_normal((3, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(mnn.run(x)["logits"], tfl.run(x)["logits"], atol=1e-4)


def test_file_from_mnn_alone_reports_what_it_declares(models):
    """A .mnn written by MNN's converter alone declares batch 1, and says so."""
    assert edgert.load(models["mnn"]).inputs[0].shape == (1, 3, 16, 16)


def test_nhwc_feed_to_nchw_mnn_input_is_an_input_error(converted, capfd):
    s = edgert.load(converted["fp32"]["mnn"])
    capfd.readouterr()
    with pytest.raises(edgert.InputError) as err:
        s.run(np.zeros((2, 16, 16, 3), np.float32))
    msg = str(err.value)
    assert "?x3x16x16 (NCHW)" in msg and "2x16x16x3, which is NHWC" in msg
    assert "transpose(0, 3, 1, 2)" in msg
    assert capfd.readouterr().err == ""        # no C++ text on the user's stderr


def test_nchw_feed_to_nhwc_tflite_input_is_an_input_error(converted):
    s = edgert.load(converted["nhwc"]["tflite"])
    assert s.inputs[0].shape == (None, 16, 16, 3)
    with pytest.raises(edgert.InputError, match=r"\(NHWC\); got 1x3x16x16, which is NCHW"):
        s.run(np.zeros((1, 3, 16, 16), np.float32))
    x = np.zeros((1, 16, 16, 3), np.float32)   # the right layout still runs
    assert s.run(x)["logits"].shape == (1, 10)


def _cli(*args):
    from tests.runtime.test_cli import edgert_cli

    return edgert_cli(*args)


def test_top1_is_argmax_on_near_flat_logits(tmp_path):
    """Logits 1e-8 apart tie after a float32 softmax; the ranking is on the logits."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["logits"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1000])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "flat.onnx"))
    x = np.zeros((1, 1000), np.float32)
    x[0, 295] = 1e-8
    x[0, 7] = 1e-8 / 2
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "labels.txt").write_text("".join(f"c{i}\n" for i in range(1000)))
    out = json.loads(_cli("run", tmp_path / "flat.onnx", "--input", tmp_path / "x.npy",
                          "--labels", tmp_path / "labels.txt", "--top-k", "3",
                          "--json").stdout)
    assert out["outputs"][0]["argmax"] == 295
    assert [c["index"] for c in out["top_k"]["classes"]] == [295, 7, 0]
    assert out["top_k"]["classes"][0]["label"] == "c295"


def test_info_reports_mnn_quantization(converted):
    int8 = json.loads(_cli("info", converted["int8"]["mnn"], "--json").stdout)
    assert int8["quantized"] is True
    assert int8["quantization"] == {"weights": "int8", "activations": "int8",
                                    "quantized_layers": 2, "layers": 2}
    weights = json.loads(_cli("info", converted["int8_weights"]["mnn"], "--json").stdout)
    assert weights["quantized"] is True
    assert weights["quantization"]["weights"] == "int8"
    assert weights["quantization"]["activations"] == "float"
    fp32 = json.loads(_cli("info", converted["fp32"]["mnn"], "--json").stdout)
    assert fp32["quantized"] is False and fp32["quantization"]["weights"] == "float"


def test_int8_speed_note_follows_the_cpu():
    from edgert.cpu_features import cpu_flags, int8_speed_note

    full = {"quantized": True, "quantization": {"activations": "int8"}}
    assert int8_speed_note("mnn", {"quantized": False}) is None
    assert "no AVX-512 VNNI" in int8_speed_note("litert", full, "x86_64", {"avx2", "fma"})
    assert "MNN's int8 kernels are tuned for ARM" in int8_speed_note(
        "mnn", full, "x86_64", {"avx2", "avx512_vnni"})
    assert "asimddp" in int8_speed_note("mnn", full, "aarch64", {"neon", "asimd"})
    assert int8_speed_note("mnn", full, "aarch64", {"asimd", "asimddp"}) is None
    weights_only = {"quantized": True, "quantization": {"activations": "float"}}
    assert "not faster" in int8_speed_note("mnn", weights_only, "x86_64", set())
    assert cpu_flags("processor : 0\nflags\t\t: fpu avx2 avx_vnni\n") == {"fpu", "avx2",
                                                                          "avx_vnni"}
    assert cpu_flags("Features\t: fp asimd asimddp\n") == {"fp", "asimd", "asimddp"}


def test_bench_prints_the_int8_note_for_this_host(converted):
    from edgert.cpu_features import int8_speed_note

    s = edgert.load(converted["int8"]["mnn"])
    note = int8_speed_note("mnn", s.file_details)
    out = _cli("bench", converted["int8"]["mnn"], "--runs", "2", "--warmup", "0").stdout
    flat = " ".join(out.split())
    if note is None:
        assert "int8" not in flat
    else:
        assert " ".join(note.split()) in flat
