"""Honest output: no verdict without verification, top-1 gated for quantized
classifiers, warnings for calibration flags that do nothing."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.verify import check_output, thresholds_for
from tests.cli.helpers import edgert
from tests.converters import onnx_builders as ob


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("honest") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


def test_no_verify_prints_no_verdict(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path, "--no-verify")
    assert code == 0, err
    assert "not verified (--no-verify)" in out
    assert "PASSED" not in out and "FAILED" not in out
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path / "j", "--no-verify",
                            "--json")
    import json

    rep = json.loads(out)
    assert rep["verified"] is False and all(t["verification"] is None for t in rep["targets"])


def _flat_logits(rows=4, classes=10):
    """Logits near 10 with leads of 0.01: every row a tie within int8's noise margin."""
    rng = np.random.default_rng(3)
    ref = (10 + 0.01 * rng.standard_normal((rows, classes))).astype(np.float32)
    res = ref.copy()
    top = ref.argmax(axis=1)
    res[np.arange(rows), top] -= 0.05                  # every argmax moves elsewhere
    return ref, res


def test_a_quantized_classifier_with_no_top1_agreement_fails():
    ref, res = _flat_logits()
    assert (ref.argmax(1) != res.argmax(1)).all()
    check = check_output("logits", ref, res, thresholds_for("int8"), class_scores=True)
    assert check.cosine > 0.9999 and check.top1 == 0.0 and check.top1_judged == 0
    assert not check.passed
    assert "top-1 agrees on 0.00 of the rows < 0.5" in check.failures[0]
    assert "verify on real inputs" in check.failures[0]


def test_a_quantized_classifier_with_ties_that_agree_passes_and_says_unjudged():
    from converters.verify import Verification

    ref, _ = _flat_logits()
    res = ref + np.float32(0.001)          # a uniform shift: argmax kept on every row
    check = check_output("logits", ref, res, thresholds_for("int8"), class_scores=True)
    assert check.passed and check.top1 == 1.0 and check.top1_judged == 0
    v = Verification("mnn", "int8", thresholds_for("int8"), [check], inputs="x")
    assert v.table_rows()[0][-1] == "ok (top-1 not judged: every row a tie within noise)"


def test_ignored_calibration_flags_are_warned_about(capsys, conv_onnx, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 3, 8, 8), np.float32))
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path / "o",
                            "--precision", "fp16", "--calibration-data", tmp_path / "x.npy",
                            "--calib-method", "entropy", "--no-verify")
    assert code == 0, err
    assert ("warning: --calibration-data, --calib-method ignored: only --precision int8 "
            "calibrates (asked: fp16)") in err


def test_int8_images_without_normalization_are_warned_about(capsys, conv_onnx, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
            images / f"{k}.png")
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path / "o",
                            "--precision", "int8", "--calibration-data", images,
                            "--calib-method", "percentile")
    assert code in (0, 1), err
    assert "calibrating on images scaled to 0..1 with no normalization" in err
    assert "--calib-mean 0.485 0.456 0.406" in err
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path / "o2",
                            "--precision", "int8", "--calibration-data", images,
                            "--calib-mean", "0.5", "--calib-std", "0.25")
    assert "no normalization" not in err


def test_calib_method_reaches_the_table(capsys, conv_onnx, tmp_path):
    import json

    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32))
    for method in ("minmax", "percentile"):
        code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path / method,
                                "--precision", "int8", "--calibration-data", data,
                                "--calib-method", method, "--no-verify")
        assert code == 0, err
    tables = {m: json.loads((tmp_path / m / "padconv.int8.quant.json").read_text())
              for m in ("minmax", "percentile")}
    assert tables["minmax"]["provenance"]["method"] == "minmax"
    assert tables["percentile"]["provenance"]["method"] == "percentile(99.99)"
