"""Post-training calibration: ranges, estimators, partial tables, data forms."""
from __future__ import annotations

import numpy as np
import pytest

from edgert.errors import InputError, UnsupportedOptionError
from quant_tables import ActivationQuant, QuantTable
from quant_tables.onnx_tensors import TensorTap, float_tensors
from quant_tables.producers.calibrate import calibrate
from quant_tables.producers.range_estimators import kl_threshold
from quant_tables.qparams import qparams_from_range


@pytest.fixture(scope="module")
def float_values(small_onnx, cal_data):
    return TensorTap(small_onnx).run({"x": cal_data})


def test_minmax_ranges_are_the_observed_ranges(small_onnx, cal_data, float_values):
    t = calibrate(small_onnx, cal_data, "minmax", batch=7)   # 7 batches of up to 7 samples
    assert t.provenance.details["samples"] == 48
    for name, a in t.activations.items():
        v = float_values[name]
        assert a.min == pytest.approx(float(v.min()), rel=1e-6)
        assert a.max == pytest.approx(float(v.max()), rel=1e-6)
        lo, hi = min(a.min, 0.0), max(a.max, 0.0)
        assert a.scale == pytest.approx((hi - lo) / 255, rel=1e-6)
        # 0.0 is exactly representable and the range ends map inside [-128, 127]
        assert -128 <= a.zero_point <= 127
        assert a.real_range[0] <= lo + a.scale and a.real_range[1] >= hi - a.scale
    relu = [n for n in t.activations if "Relu" in n][0]
    assert t.activations[relu].zero_point == -128       # non-negative tensor: zero at the bottom


def test_weights_are_per_channel_symmetric(small_onnx, cal_data):
    import onnx
    from onnx import numpy_helper
    from quant_tables.layer_weights import layer_weights

    proto = onnx.load(small_onnx)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    t = calibrate(small_onnx, cal_data[:4], "minmax")
    for lw in layer_weights(proto):
        w = t.weights[lw.name]
        amax = np.abs(inits[lw.name]).reshape(inits[lw.name].shape[0], -1).max(axis=1) \
            if lw.axis == 0 else np.abs(inits[lw.name]).max(axis=0)
        assert w.axis == lw.axis and w.symmetric and set(w.zero_point) == {0}
        np.testing.assert_allclose(np.asarray(w.scale), amax / 127.0, rtol=1e-6)
    per_tensor = calibrate(small_onnx, cal_data[:4], "minmax", per_channel=False)
    assert all(w.axis is None and len(w.scale) == 1 for w in per_tensor.weights.values())


def test_percentile_and_entropy_clip_outliers(small_onnx, cal_data):
    data = cal_data.copy()
    data[0, 0, 0, 0] = 40.0                        # one outlier in the input
    mm = calibrate(small_onnx, data, "minmax", weights=False)
    pc = calibrate(small_onnx, data, "percentile", percentile=99.9, weights=False)
    en = calibrate(small_onnx, data, "entropy", weights=False)
    assert mm.activations["x"].max == pytest.approx(40.0)
    assert pc.activations["x"].real_range[1] < 5.0      # the outlier no longer sets the range
    assert en.activations["x"].real_range[1] < 8.0
    assert pc.provenance.method == "percentile(99.9)" and en.provenance.method == "entropy"
    for name in mm.activations:                          # never wider than the observed range
        assert pc.activations[name].scale <= mm.activations[name].scale * (1 + 1e-6)
        assert en.activations[name].scale <= mm.activations[name].scale * (1 + 1e-6)


def test_kl_threshold_ignores_a_far_outlier():
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=200_000)).astype(np.float32)
    x[:3] = 50.0
    hist, _ = np.histogram(x, bins=2048, range=(0, 50.0))
    t = kl_threshold(hist, 50.0)
    assert 2.5 < t < 8.0, t
    flat = np.ones(2048)
    assert kl_threshold(flat, 1.0) == pytest.approx(1.0)   # uniform data: keep everything


def test_passthrough_outputs_share_their_input(small_onnx, cal_data):
    t = calibrate(small_onnx, cal_data, "entropy", weights=False)
    pool = [n for n in t.activations if "MaxPool" in n][0]
    relu = [n for n in t.activations if "Relu" in n][0]
    assert t.activations[pool].source == f"shared:{relu}"
    assert (t.activations[pool].scale, t.activations[pool].zero_point) == \
        (t.activations[relu].scale, t.activations[relu].zero_point)


def test_partial_table_is_filled_not_overwritten(small_onnx, cal_data):
    names = float_tensors(__import__("onnx").load(small_onnx))
    keep = names[1]
    partial = QuantTable(activations={keep: ActivationQuant(0.5, 7, source="qat:conv")})
    t = calibrate(small_onnx, cal_data, "minmax", table=partial)
    assert t.activations[keep].scale == 0.5 and t.activations[keep].source == "qat:conv"
    assert set(t.activations) == set(names)
    assert t.provenance.details["filled_by"]["producer"] == "calibrate"


def test_data_forms(small_onnx, cal_data, tmp_path):
    np.save(tmp_path / "one.npy", cal_data[:8])
    np.savez(tmp_path / "named.npz", x=cal_data[:8])
    d = tmp_path / "dir"
    d.mkdir()
    for i in range(3):
        np.savez(d / f"{i:02d}.npz", x=cal_data[i:i + 2])
    a = calibrate(small_onnx, str(tmp_path / "one.npy"), "minmax", weights=False)
    b = calibrate(small_onnx, str(tmp_path / "named.npz"), "minmax", weights=False)
    c = calibrate(small_onnx, {"x": cal_data[:8]}, "minmax", weights=False)
    e = calibrate(small_onnx, str(d), "minmax", weights=False)
    assert a.activations["x"].to_dict() == b.activations["x"].to_dict() == c.activations["x"].to_dict()
    assert e.provenance.details["samples"] == 6
    assert calibrate(small_onnx, cal_data, "minmax", limit=1, batch=4).provenance.details["samples"] == 4
    np.savez(tmp_path / "renamed.npz", image=cal_data[:2])    # one input, one array: taken
    assert calibrate(small_onnx, str(tmp_path / "renamed.npz"), weights=False).provenance \
        .details["samples"] == 2
    np.savez(tmp_path / "wrong.npz", image=cal_data[:2], mask=cal_data[:2])
    with pytest.raises(InputError, match=r"no array for model input\(s\) \['x'\]"):
        calibrate(small_onnx, str(tmp_path / "wrong.npz"))
    with pytest.raises(InputError, match="no such calibration data"):
        calibrate(small_onnx, str(tmp_path / "nothing.npz"))
    with pytest.raises(UnsupportedOptionError, match="calibration method 'median'"):
        calibrate(small_onnx, cal_data, "median")


def test_torch_data_forms(small_onnx, cal_data):
    """What a torch user has at hand: tensors, a list of (x,) tuples, dicts of tensors.
    A list of tuples used to end in "dictionary update sequence element #0 has length 1"."""
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(cal_data[:8])
    ref = calibrate(small_onnx, cal_data[:8], "minmax", weights=False).activations["x"].to_dict()
    for data in (t, {"x": t}, [(t[i:i + 2],) for i in range(0, 8, 2)],
                 [[t[i:i + 2]] for i in range(0, 8, 2)], [{"x": t[:4]}, {"x": t[4:]}],
                 [t[:4], cal_data[4:8]]):
        got = calibrate(small_onnx, data, "minmax", weights=False)
        assert got.activations["x"].to_dict() == ref, type(data)
        assert got.provenance.details["samples"] == 8
    with pytest.raises(InputError, match=r"data\[0\]: 2 arrays for a model with input\(s\) "
                                         r"\['x'\]: give the inputs only.*for x, _ in loader"):
        calibrate(small_onnx, [(t[:2], torch.zeros(2))], weights=False)
    with pytest.raises(InputError, match=r"data\[0\]: a str; accepted: an array or tensor"):
        calibrate(small_onnx, [["x"]][0], weights=False)
    with pytest.raises(InputError, match=r"calibration data of type int; accepted"):
        calibrate(small_onnx, 3, weights=False)


def test_qparams_from_range():
    assert qparams_from_range(-1.0, 1.0, "int8", symmetric=True) == (pytest.approx(1 / 127.5), 0)
    s, z = qparams_from_range(0.0, 2.55, "uint8")
    assert s == pytest.approx(0.01) and z == 0
    s, z = qparams_from_range(1.0, 2.0, "int8")          # widened to include 0
    assert z == -128 and s == pytest.approx(2.0 / 255)
    assert qparams_from_range(0.0, 0.0, "int8")[0] > 0    # all zeros: still a valid scale


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_mask_fill_values_stay_out_of_every_estimators_range(method):
    from quant_tables.producers.range_estimators import make

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 64)).astype(np.float32)
    masked = x.copy()
    masked[:, 40:] = np.finfo(np.float32).min          # an attention mask's fill value
    masked[0, 0] = -np.inf
    est = make(method)
    est.observe("t", masked)
    if est.two_pass:
        est.observe_second("t", masked)
    lo, hi = est.range("t")
    data = masked[np.isfinite(masked) & (np.abs(masked) < 1e30)]
    assert data.min() - 1e-6 <= lo and hi <= data.max() + 1e-6 and hi - lo > 1
    assert est.masked == {"t": 4 * 24}                 # -inf is not counted as a mask value
