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


def test_a_quantized_classifier_whose_rows_are_all_ties_never_reads_ok():
    from converters.verify import Verification

    ref, res = _flat_logits()
    assert (ref.argmax(1) != res.argmax(1)).all()
    check = check_output("logits", ref, res, thresholds_for("int8"), class_scores=True)
    assert check.cosine > 0.9999 and check.top1 == 0.0 and check.top1_judged == 0
    assert check.top1_unjudged and check.to_dict()["top1_unjudged"]
    v = Verification("mnn", "int8", thresholds_for("int8"), [check], inputs="x")
    verdict = v.table_rows()[0][-1]
    assert verdict.startswith("UNJUDGED: top-1 0.00") and "ok" not in verdict
    # a tie that keeps every argmax is no surprise: "ok"
    same = check_output("logits", ref, ref + np.float32(0.001), thresholds_for("int8"),
                        class_scores=True)
    assert same.passed and same.top1 == 1.0 and not same.top1_unjudged
    # rows that lead by more than the noise are judged: a flipped one fails
    ref2 = ref.copy()
    ref2[np.arange(4), ref.argmax(1)] += 5.0
    res2 = ref2.copy()
    res2[0, (ref2[0].argmax() + 1) % 10] += 6.0
    judged = check_output("logits", ref2, res2, thresholds_for("int8"), class_scores=True)
    assert judged.top1_judged == 4 and not judged.passed
    assert "top-1 differs on 1 of 4 rows" in " ".join(judged.failures)


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
