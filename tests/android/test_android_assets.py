"""``edgert android-assets`` on real converted models: files, manifest, errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from device_farm.android_assets import MANIFEST_NAME, load_manifest
from edgert.files import file_sha256
from edgert.cli import main


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("labels") / "labels.txt"
    p.write_text("\n".join(f"class {i}" for i in range(10)) + "\n\n")
    return str(p)


def run_cli(*args: str) -> int:
    return main(["android-assets", *args, "--no-isolated-check"])


def test_writes_models_manifest_and_samples(tmp_path, model_files, labels, capsys):
    pil = pytest.importorskip("PIL.Image")
    sample = tmp_path / "cat.png"
    pil.fromarray(np.zeros((5, 5, 3), np.uint8)).save(sample)
    out = tmp_path / "assets"
    rc = run_cli(model_files["mnn"], model_files["mnn_probs"], "--labels", labels, "--out",
                 str(out), "--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224",
                 "0.225", "--images", str(sample), "--json")
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    manifest = load_manifest(str(out))
    assert printed == manifest
    logits, probs = manifest["models"]
    assert logits["file"] == "tiny_logits.mnn" and logits["format"] == "mnn"
    assert logits["sha256"] == file_sha256(model_files["mnn"]) == file_sha256(out / "tiny_logits.mnn")
    assert logits["inputs"] == [{"name": "image", "shape": [1, 3, 8, 8], "dtype": "float32",
                                 "quantization": None}]
    assert logits["outputs"][0]["name"] == "logits" and logits["outputs"][0]["shape"] == [1, 10]
    pre = logits["preprocess"]
    assert (pre["layout"], pre["color"], pre["height"], pre["width"]) == ("NCHW", "RGB", 8, 8)
    assert pre["mean"] == [0.485, 0.456, 0.406] and pre["std"] == [0.229, 0.224, 0.225]
    assert logits["postprocess"] == {"output": "logits", "classes": 10, "softmax": True,
                                     "top_k": 5}
    assert probs["postprocess"]["softmax"] is False  # the model ends in a Softmax already
    assert logits["labels"] == [f"class {i}" for i in range(10)]  # trailing blank line dropped
    assert manifest["samples"] == ["samples/cat.png"]
    assert (out / "samples" / "cat.png").read_bytes() == sample.read_bytes()


def test_int8_tflite_manifest_carries_quantization(tmp_path, model_files):
    out = tmp_path / "assets"
    assert run_cli(model_files["tflite_int8"], "--out", str(out), "--resize", "center_crop",
                   "--top-k", "3") == 0
    (m,) = load_manifest(str(out))["models"]
    q = {"scale": [float(np.float32(0.05))], "zero_point": [-3], "axis": None}
    assert m["inputs"][0]["dtype"] == "int8" and m["inputs"][0]["quantization"] == q
    assert m["outputs"][0]["quantization"] == q
    assert m["preprocess"]["layout"] == "NHWC" and m["preprocess"]["quantization"] == q
    assert m["preprocess"]["dtype"] == "int8" and m["preprocess"]["resize"] == "center_crop"
    assert m["postprocess"]["top_k"] == 3 and m["postprocess"]["classes"] == 48
    assert m["labels"] is None and m["host_engine"].startswith("ai-edge-litert")


def test_isolated_check_path_and_explicit_layout(tmp_path, model_files):
    out = tmp_path / "assets"
    assert main(["android-assets", model_files["mnn"], "--out", str(out), "--softmax", "no",
                 "--color", "BGR"]) == 0
    (m,) = load_manifest(str(out))["models"]
    assert m["preprocess"]["color"] == "BGR" and m["postprocess"]["softmax"] is False


@pytest.mark.parametrize("case,message", [
    ("onnx", "loads only .tflite"),
    ("labels", "9 labels for output 'logits' with 10 values"),
    ("missing", "no such model file"),
    ("duplicate", "share the file name"),
])
def test_bad_requests_fail_with_a_clear_message(tmp_path, model_files, case, message, capsys):
    out = str(tmp_path / "assets")
    if case == "onnx":
        args = [model_files["onnx"]]
    elif case == "labels":
        lab = tmp_path / "nine.txt"
        lab.write_text("\n".join("abcdefghi"))
        args = [model_files["mnn"], "--labels", str(lab)]
    elif case == "missing":
        args = [str(tmp_path / "nope.mnn")]
    else:
        os.makedirs(tmp_path / "b")
        twin = tmp_path / "b" / os.path.basename(model_files["mnn"])
        twin.write_bytes(open(model_files["mnn"], "rb").read())
        args = [model_files["mnn"], str(twin)]
    assert run_cli(*args, "--out", out) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(os.path.join(out, MANIFEST_NAME))
