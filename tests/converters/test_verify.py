"""Verification metrics and gates (converters/verify.py): the fp32 bound that a scaled,
shifted or constant-but-wrong output cannot pass, cosine waived below the absolute
floor, exact integer outputs, the SNR gate of the quantized precisions, top-1 on class
scores outside the noise margin, several input sets, and the assert_close helper."""
from __future__ import annotations

import math

import numpy as np
import pytest

from converters.verify import (FLOAT_ATOL, THRESHOLDS, U16, U32, assert_close, compare,
                               compare_sets, fp16_rtol, fp32_rtol, load_feeds, metrics,
                               random_feeds, snr_for_cosine, thresholds_for)
from edgert.errors import InputError


def _rounded(ref: np.ndarray, ulps: float, seed: int = 0) -> np.ndarray:
    """``ref`` with an error of up to ``ulps`` units of float32 roundoff of max|ref|:
    what a correct conversion in another summation order looks like."""
    rng = np.random.default_rng(seed)
    scale = float(np.max(np.abs(ref)))
    return (ref + ulps * U32 * scale * rng.uniform(-1, 1, ref.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def feature_map():
    return np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32)


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


def test_the_tolerances_are_the_documented_arithmetic():
    assert U32 == 2.0 ** -24 and U16 == 2.0 ** -11
    assert FLOAT_ATOL == 16 * U32 == 2.0 ** -20
    assert fp32_rtol(1) == fp32_rtol(8) == 16 * 8 * U32          # the floor of 8 ops
    assert fp32_rtol(100) == 16 * 100 * U32
    assert fp32_rtol(500) < 1e-3                                 # a 0.1 % shift still fails
    assert fp16_rtol(64) == pytest.approx(8 * U16 * 8 + fp32_rtol(64))
    t = thresholds_for("fp32", depth=50)
    assert (t.rtol, t.atol, t.min_cosine) == (fp32_rtol(50), FLOAT_ATOL, 0.99999)
    # the SNR gate of the quantized precisions is the cosine gate for unbiased noise
    assert snr_for_cosine(0.98) == pytest.approx(10 * math.log10(25))
    assert thresholds_for("int8").min_snr_db == pytest.approx(13.979, abs=1e-3)
    assert thresholds_for("int8", {"min_cosine": 0.995}).min_snr_db == pytest.approx(20.0)
    assert thresholds_for("fp32").min_snr_db is None


@pytest.mark.parametrize("depth", [1, 60, 500])
def test_a_correct_fp32_conversion_passes(feature_map, depth):
    """An error of a few roundoffs per op of the path passes at every depth."""
    got = _rounded(feature_map, ulps=4 * max(depth, 1))
    v = compare({"y": feature_map}, {"y": got}, "mnn", "fp32", depths={"y": depth})
    assert v.passed, v.failures


@pytest.mark.parametrize("depth", [1, 60, 500])
def test_scaled_or_shifted_outputs_fail_though_cosine_passes_scale(feature_map, depth):
    scaled = feature_map * np.float32(1.01)
    assert metrics(feature_map, scaled)["cosine"] > 0.9999999    # cosine is blind to it
    v = compare({"y": feature_map}, {"y": scaled}, "mnn", "fp32", depths={"y": depth})
    assert not v.passed and "max abs error" in v.failures[0] and "> bound" in v.failures[0]
    shifted = feature_map + np.float32(1e-3 * np.max(np.abs(feature_map)))
    v = compare({"y": feature_map}, {"y": shifted}, "mnn", "fp32", depths={"y": depth})
    assert not v.passed and "max abs error" in v.failures[0]


def test_a_constant_vector_with_wrong_values_fails():
    """lstm_reverse's Y_h as MNN computed it: every element off by the same factor, so
    the flattened cosine is exactly 1 and only the bound sees it."""
    ref = np.full((1, 1, 3), 0.4375, np.float32)
    got = np.full((1, 1, 3), 0.6338, np.float32)
    assert metrics(ref, got)["cosine"] == pytest.approx(1.0)
    v = compare({"Y_h": ref}, {"Y_h": got}, "mnn", "fp32", depths={"Y_h": 1})
    assert not v.passed and "max abs error 0.196 > bound" in v.failures[0]


def test_a_near_zero_output_computed_right_passes():
    """PP-OCR's DB-net: outputs all near zero, errors of an ulp of the O(1) values they
    came from. Cosine falls below 0.99999; the error is below the absolute floor."""
    rng = np.random.default_rng(0)
    ref = (2e-6 * rng.standard_normal((1, 1, 32, 32))).astype(np.float32)
    got = (ref + 1.1e-7 * rng.uniform(-1, 1, ref.shape)).astype(np.float32)
    assert metrics(ref, got)["cosine"] < 0.99999
    v = compare({"maps": ref}, {"maps": got}, "tflite", "fp32")
    assert v.passed, v.failures
    assert v.outputs[0].cosine_waived
    # ... but not when the same error sits on values of ordinary size
    v = compare({"maps": ref}, {"maps": got + np.float32(2e-6)}, "tflite", "fp32")
    assert not v.passed


def test_integer_outputs_compare_exactly():
    ref = np.array([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]], np.int64)
    got = ref.copy()
    got[0, 4] = 4
    v = compare({"idx": ref}, {"idx": got}, "mnn", "fp32")
    assert not v.passed and v.outputs[0].kind == "index"
    assert "1 of 10 values differ" in v.failures[0] and "4 vs source 5" in v.failures[0]
    assert compare({"idx": ref}, {"idx": ref.astype(np.int32)}, "mnn", "fp32").passed
    # quantized precisions reorder near-ties feeding an ArgMax: half must agree
    assert compare({"idx": ref}, {"idx": got}, "mnn", "int8").passed
    got[0, :6] = 0
    assert not compare({"idx": ref}, {"idx": got}, "mnn", "int8").passed
    mask = np.array([True, False, True])
    assert not compare({"m": mask}, {"m": ~mask}, "tflite", "fp32").passed


def test_int8_snr_gate_fails_a_scale_error_cosine_misses():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((1, 64, 4, 4)).astype(np.float32)
    noisy = ref + 0.05 * rng.standard_normal(ref.shape).astype(np.float32)
    assert compare({"y": ref}, {"y": noisy}, "tflite", "int8").passed
    v = compare({"y": ref}, {"y": 1.3 * noisy}, "tflite", "int8")
    assert metrics(ref, 1.3 * noisy)["cosine"] > 0.99
    assert not v.passed and "SNR" in v.failures[0]


def test_top1_is_judged_outside_the_noise_margin_only():
    up = 1.0 + 2.0 ** -23                                # the float32 after 1.0
    ref = np.array([[0.0, 5.0, 1.0], [1.0, up, 0.0]], np.float32)
    tie_flipped = np.array([[0.0, 5.0, 1.0], [up, 1.0, 0.0]], np.float32)
    v = compare({"logits": ref}, {"logits": tie_flipped}, "mnn", "fp32")
    assert v.passed and v.outputs[0].top1 == 0.5 and v.outputs[0].top1_judged == 1
    # int8: a confident row whose class changes fails, though cosine stays high
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((8, 1000)).astype(np.float32)
    logits[:, 7] += 6.0                                  # every row is confident: class 7
    wrong = logits.copy()
    wrong[0, 8] = wrong[0, 7] + 0.5                      # one score of 8000 moves
    assert metrics(logits, wrong)["cosine"] > 0.99
    v = compare({"logits": logits}, {"logits": wrong}, "tflite", "int8")
    assert not v.passed and "top-1 differs on 1 of 8 rows" in v.failures[0]
    # the same numbers as a detection head (rank 3) or named not-class-scores: no top-1
    v = compare({"boxes": logits[None]}, {"boxes": wrong[None]}, "tflite", "int8")
    assert v.outputs[0].top1 is None and v.passed
    v = compare({"emb": logits}, {"emb": wrong}, "tflite", "int8", class_scores=set())
    assert v.passed


def test_nan_and_inf_must_sit_where_the_source_has_them():
    ref = np.array([1.0, np.nan, np.inf, -2.0], np.float32)
    assert compare({"y": ref}, {"y": ref.copy()}, "mnn", "fp32").passed
    moved = np.array([np.nan, 1.0, np.inf, -2.0], np.float32)
    assert "NaN/inf differ" in compare({"y": ref}, {"y": moved}, "mnn", "fp32").failures[0]
    fin = np.ones(4, np.float32)
    got = fin.copy()
    got[2] = np.nan
    assert "NaN or inf where the source has none" in \
        compare({"y": fin}, {"y": got}, "mnn", "fp32").failures[0]


def test_several_input_sets_report_the_failing_one(feature_map):
    good = _rounded(feature_map, 2)
    v = compare_sets([{"y": feature_map}, {"y": feature_map}], [{"y": good},
                                                                {"y": feature_map * 2}],
                     ["given: x.npz", "seeded N(0,1), seed 0"], "mnn", "fp32")
    assert not v.passed and v.input_sets == ["given: x.npz", "seeded N(0,1), seed 0"]
    assert len(v.failures) == 1 and v.failures[0].endswith("(inputs: seeded N(0,1), seed 0)")
    assert v.outputs[0].worst_input == "seeded N(0,1), seed 0"


def test_a_reference_problem_never_passes(feature_map):
    v = compare({"y": feature_map}, {"y": feature_map}, "mnn", "fp32",
                reference_problem="no trustworthy reference")
    assert not v.passed and v.failures == ["reference: no trustworthy reference"]
    assert v.outputs[0].passed and "UNVERIFIED" in v.table_rows()[0][-1]


def test_compare_fails_on_shape_and_matches_renamed_outputs():
    ref = np.random.default_rng(0).standard_normal((1, 10)).astype(np.float32)
    v = compare({"y": ref}, {"y": ref[:, :5]}, "mnn", "fp32")
    assert not v.passed and "shape" in v.failures[0]
    v = compare({"logits": ref}, {"Identity_0": ref}, "tflite", "fp32")
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


def test_a_float16_output_is_judged_with_float16_rounding():
    """A source whose output is float16 (``return y.half()``) against an engine that
    returns the float32 value unrounded: up to an fp16 ulp apart, which the fp32 bound
    called an error (MNN, fp32, cosine 0.99999998). Beyond that it still fails, and a
    float32 output keeps the fp32 bound."""
    from converters.verify import check_output, storage_rounding, thresholds_for

    rng = np.random.default_rng(0)
    exact = rng.normal(size=(4, 64)).astype(np.float32)
    ref16 = exact.astype(np.float16)
    t = thresholds_for("fp32", depth=4)
    assert storage_rounding(ref16, exact) == 2.0 ** -11 and storage_rounding(exact) == 0.0
    assert check_output("y", ref16, exact, t).failures == []
    off = exact * (1 + 8 * 2.0 ** -11)        # 8 ulps of float16: a real difference
    assert any("max abs error" in f for f in check_output("y", ref16, off, t).failures)
    near = exact * (1 + 2.0 ** -12)            # within fp16 rounding, far beyond fp32's
    assert any("max abs error" in f for f in
               check_output("y", exact, near, t).failures)


def test_an_int8_output_within_its_error_bound_is_judged_by_absolute_error():
    """A scalar mean of 0.0007 that int8 writes as 0 (2.4 steps of its scale away) had
    cosine 0 and failed. An output whose reference lies entirely within 4 steps of zero
    is judged by max abs error against that instead; above it, cosine and SNR apply as
    before (a depth-scaled floor let MobileNetV2's logits pass at cosine 0.87)."""
    from converters.verify import NOISE_FLOOR_STEPS, check_output, thresholds_for

    t = thresholds_for("int8")
    floor = NOISE_FLOOR_STEPS * 0.0003
    ref = np.array(0.0007, np.float32)
    assert check_output("m", ref, np.array(0.0, np.float32), t).failures        # no floor
    assert check_output("m", ref, np.array(0.0, np.float32), t, noise_floor=floor).failures \
        == []
    far = check_output("m", ref, np.array(0.005, np.float32), t, noise_floor=floor)
    assert any("4 int8 steps of this output" in f for f in far.failures)
    big = np.linspace(-1, 1, 50).astype(np.float32)
    flipped = check_output("y", big, -big, t, noise_floor=floor)      # beyond the floor
    assert any("cosine" in f for f in flipped.failures)
