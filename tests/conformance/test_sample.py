"""A sample of ONNX's node tests in every `make test`: the cases that once converted to a
silent wrong answer (the sweep of 2026-12 found 30 such runs, listed in docs/CONFORMANCE.md)
plus one plain case per family. None may be silent, crash or hang again, and where
tests/conformance/expectations.json records an outcome, the outcome must not change. The
whole sweep is `make conformance`."""
from __future__ import annotations

import pytest

from tests.conformance.runner import key, load_expectations, sweep

# converted wrong without a word before issue 14 (MNN unless said)
ONCE_SILENT = ["test_clip_min_greater_than_max", "test_lstm_reverse",
               "test_maxunpool_export_with_output_shape", "test_nllloss_NCd1_ii",
               "test_resize_downsample_scales_cubic_align_corners",
               "test_resize_downsample_scales_linear_align_corners",   # and TFLite
               "test_sce_mean_no_weight_ii", "test_simple_rnn_reverse", "test_stft"]
ONCE_SILENT_INPUTS = ["test_gelu_default_2", "test_mish"]        # mish: both targets
PLAIN = ["test_conv_with_strides_padding", "test_softmax_axis_1", "test_averagepool_2d_pads",
         "test_layer_normalization_4d_axis1", "test_resize_upsample_scales_nearest",
         "test_reduce_mean_keepdims_random"]

NOT_ALLOWED = {"silent", "crash", "hang"}


@pytest.fixture(scope="module")
def outcomes():
    return (sweep(ONCE_SILENT + PLAIN, variants=("constants",), timeout=60, progress=False)
            + sweep(ONCE_SILENT_INPUTS, variants=("inputs",), timeout=60, progress=False))


def test_no_sampled_case_is_silent_crashes_or_hangs(outcomes):
    bad = [(key(r), r["status"], r.get("detail", "")) for r in outcomes
           if r["status"] in NOT_ALLOWED]
    assert not bad, bad
    assert len(outcomes) >= 2 * (len(ONCE_SILENT) + len(PLAIN) + len(ONCE_SILENT_INPUTS)) - 4


def test_plain_cases_pass_on_both_targets(outcomes):
    plain = [r for r in outcomes if r["case"] in PLAIN]
    assert plain and all(r["status"] == "pass" for r in plain), \
        [(key(r), r["status"]) for r in plain if r["status"] != "pass"]


def test_outcomes_match_the_recorded_expectations(outcomes):
    expected = load_expectations()
    if not expected:
        pytest.skip("no tests/conformance/expectations.json yet (make conformance writes it)")
    changed = [(key(r), expected[key(r)], r["status"]) for r in outcomes
               if key(r) in expected and expected[key(r)] != r["status"]]
    assert not changed, changed
