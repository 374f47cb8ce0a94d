"""Verification metrics, thresholds, and the assert_close helper."""
from __future__ import annotations

import math

import numpy as np
import pytest

from converters.verify import (THRESHOLDS, assert_close, compare, load_feeds, metrics,
                               random_feeds, thresholds_for)
from edgert.errors import InputError


def test_metrics_on_known_values():
    ref = np.array([[3.0, 4.0]], np.float32)
    res = np.array([[3.0, 3.0]], np.float32)
    m = metrics(ref, res)
    assert m["max_abs"] == 1.0
    assert m["max_rel"] == pytest.approx(0.25)            # 1 / max|ref| = 1/4
    assert m["cosine"] == pytest.approx(21 / (5 * math.sqrt(18)))
    assert m["snr_db"] == pytest.approx(10 * math.log10(25.0))
    assert m["top1"] == 0.0                                 # argmax 1 vs 0


def test_identical_and_zero_outputs():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = metrics(x, x)
    assert m["cosine"] == 1.0 and m["snr_db"] == math.inf and m["top1"] == 1.0
    z = np.zeros((2, 3), np.float32)
    assert metrics(z, z)["cosine"] == 1.0
    assert metrics(z, x)["cosine"] == 0.0


def test_top1_only_for_classifier_shaped_outputs():
    ref = np.array([[0, 1, 0], [2, 0, 0]], np.float32)
    res = np.array([[0, 1, 0], [0, 0, 3]], np.float32)
    assert metrics(ref, res)["top1"] == 0.5
    assert metrics(ref.reshape(1, 2, 3), res.reshape(1, 2, 3))["top1"] is None


def test_compare_fails_on_threshold_and_on_shape():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((1, 10)).astype(np.float32)
    noisy = ref + 0.01 * rng.standard_normal((1, 10)).astype(np.float32)
    v = compare({"y": ref}, {"y": noisy}, "mnn", "fp32")
    assert not v.passed and "cosine" in v.failures[0]
    v = compare({"y": ref}, {"y": noisy}, "mnn", "fp16")
    assert v.passed
    v = compare({"y": ref}, {"y": noisy}, "mnn", "fp32", thresholds={"min_cosine": 0.99,
                                                                      "min_top1": None})
    assert v.passed
    v = compare({"y": ref}, {"y": ref[:, :5]}, "mnn", "fp32")
    assert not v.passed and "shape" in v.failures[0]


def test_outputs_matched_by_position_when_renamed():
    ref = {"logits": np.ones((1, 3), np.float32)}
    v = compare(ref, {"Identity_0": np.ones((1, 3), np.float32)}, "tflite", "fp32")
    assert v.passed and "matched by position" in v.notes[0]


def test_threshold_overrides_are_checked():
    assert thresholds_for("fp32", {"min_cosine": 0.5}).min_cosine == 0.5
    assert THRESHOLDS["fp32"].min_cosine == 0.99999
    with pytest.raises(InputError, match="unknown threshold"):
        thresholds_for("fp32", {"cosine": 0.5})
    with pytest.raises(InputError, match="no verification thresholds for precision 'int3'"):
        thresholds_for("int3")


def test_assert_close_checks_shape_then_dtype_then_tolerance():
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    assert_close(x, x + 1e-7, "fp32")
    with pytest.raises(AssertionError, match="shape"):
        assert_close(x, x.reshape(4, 3), "fp32")
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(x, x.astype(np.float64), "fp32")
    with pytest.raises(AssertionError, match="outside fp32 tolerance"):
        assert_close(x, x + 1e-3, "fp32")
    assert_close(x, x + 1e-3, "fp16")
    with pytest.raises(AssertionError, match="outside fp16 tolerance"):
        assert_close(x, x + 0.05, "fp16")


def test_random_feeds_are_seeded_and_typed():
    specs = [("x", (None, 3), np.float32), ("ids", (2, 4), np.int64)]
    a, b = random_feeds(specs, seed=1), random_feeds(specs, seed=1)
    assert a["x"].shape == (1, 3) and a["ids"].dtype == np.int64
    assert np.array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], random_feeds(specs, seed=2)["x"])


def test_load_feeds_from_npz_and_errors(tmp_path):
    np.savez(tmp_path / "in.npz", x=np.ones((1, 3), np.float32))
    assert load_feeds(str(tmp_path / "in.npz"), ["x"])["x"].shape == (1, 3)
    with pytest.raises(InputError, match="unknown \\['x'\\], missing \\['image'\\]"):
        load_feeds(str(tmp_path / "in.npz"), ["image"])
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(InputError, match="one array given"):
        load_feeds(str(tmp_path / "one.npy"), ["a", "b"])
    with pytest.raises(InputError, match="no such input file"):
        load_feeds(str(tmp_path / "missing.npz"), ["x"])
