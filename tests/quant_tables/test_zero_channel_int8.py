"""A conv whose output channel has all-zero weights (a pruned channel) and a large bias,
calibrated to full int8: the channel's derived weight scale is 1.0
(``edgert.quantization.EMPTY_RANGE_SCALE``), so its int32 bias (scale s_in * s_w) keeps
its value. With float32 epsilon as the scale the bias saturated int32 and LiteRT gave
2.08 instead of 40 (measured before the arithmetic was shared)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgert.quantization import fake_quant
from quant_tables import QuantTable

torch = pytest.importorskip("torch")

BIAS = 40.0


def test_zero_weight_channel_keeps_its_bias_in_int8(tmp_path):
    import edgert
    from converters import convert

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1)).eval()
    with torch.no_grad():
        model[0].weight[2] = 0.0
        model[0].bias[2] = BIAS
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 2, 6, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(model, targets=("tflite", "mnn"), precision="int8",
                      example_inputs=(torch.from_numpy(x[:1]),), out_dir=str(tmp_path),
                      calibration_data=x, load_check="structure", exporter="torchscript",
                      raise_on_error=False)
    assert rep.ok, rep.summary()
    table = QuantTable.load(tmp_path / "sequential.int8.quant.json")
    [weight] = table.weights.values()
    assert weight.scale[2] == 1.0 and all(0 < s < 0.01 for i, s in enumerate(weight.scale)
                                          if i != 2)
    s_in = table.activations[rep.source["inputs"][0]["name"]].scale
    s_out = table.activations[rep.source["outputs"][0]].scale
    ref = model(torch.from_numpy(x[:1])).detach().numpy()
    # per channel, from the arithmetic (|x| <= 1): output rounding, weight rounding, input
    # rounding through the weights, bias rounding (scale s_in * s_w), and their product
    w, s_w = model[0].weight.detach().numpy(), np.asarray(weight.scale)
    dw = np.abs(w - fake_quant(w, s_w, 0, -127, 127, axis=0)).sum(axis=(1, 2, 3))
    l1 = np.abs(w).sum(axis=(1, 2, 3))
    bound = s_out / 2 + dw + l1 * s_in / 2 + s_in * s_w / 2 + dw * s_in / 2 + 1e-5
    assert bound[2] == pytest.approx(s_out / 2 + s_in / 2 + 1e-5)    # the zero channel: exact
    for t in rep.targets:
        sess = edgert.load(t.path, check="structure")
        y = next(iter(sess.run({sess.inputs[0].name: x[:1]}).values()))
        err = np.abs(y - ref).max(axis=(0, 2, 3))
        assert (err <= bound).all(), (t.target, err, bound)
        assert np.abs(y[0, 2] - BIAS).max() <= bound[2], t.target
