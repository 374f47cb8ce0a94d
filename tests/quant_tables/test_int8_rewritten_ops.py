"""Full int8 TFLite where the writer rewrites the graph first (PixelShuffle's CRD order)
and for ops with integer outputs (ArgMax, TopK): no layer falls back to float."""
from __future__ import annotations

import numpy as np
import torch

from converters import convert
from converters.verify import metrics
from quant_tables import QuantTable

from .int8_bounds import assert_near_simulation, depths, simulate


class ConvPixelShuffle(torch.nn.Module):
    """Output channels with very different weight magnitudes: per-channel scales in the
    wrong channel order would clip the large channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 12, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.mul_(torch.logspace(-2, 1, 12).view(12, 1, 1, 1))

    def forward(self, x):
        y = torch.nn.functional.pixel_shuffle(self.conv(x), 2)
        return y, y.argmax(1)


class TopKHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(16, 20)

    def forward(self, x):
        y = self.fc(x)
        values, indices = torch.topk(y, 3)
        return values, indices, y.argmin(-1)


def _int8(module, shape, tmp_path):
    """The int8 TFLite file, and its first output checked against the table's own
    simulation (within int8_lsb_bound steps, with both kernel families): returns the
    target and the simulation's cosine to float, the same on every CPU."""
    torch.manual_seed(0)
    m = module().eval()
    x = torch.randn(shape)
    cal = np.random.default_rng(0).standard_normal((16,) + shape[1:]).astype(np.float32)
    rep = convert(m, targets="tflite", example_inputs=(x,), precision="int8",
                  calibration_data=cal, out_dir=tmp_path, raise_on_error=False)
    t = rep.target("tflite")
    assert t.error is None, t.error
    feeds = {rep.source["inputs"][0]["name"]:
             np.random.default_rng(7).standard_normal(shape).astype(np.float32)}
    opt = rep.optimized_path
    table = QuantTable.load(tmp_path / f"{rep.name}.int8.quant.json")
    sim = simulate(opt, table, feeds)
    name = rep.source["outputs"][0]
    assert_near_simulation(t.path, feeds, sim, {name: table.activations[name].scale},
                           depths(opt))
    ref = m(torch.from_numpy(next(iter(feeds.values()))))
    ref = (ref[0] if isinstance(ref, tuple) else ref).detach().numpy()
    return t, metrics(ref, sim[name].reshape(ref.shape))["cosine"]


def test_pixel_shuffle_conv_keeps_its_per_channel_scales(tmp_path):
    """Scales in the wrong channel order would clip the large channels: the result would
    leave the simulation by far more than the int8 bound."""
    t, sim_cosine = _int8(ConvPixelShuffle, (1, 3, 8, 8), tmp_path)
    info = t.details["int8"]
    assert info["float_ops"] == [], info["float_ops"]
    assert sim_cosine >= 0.995, sim_cosine
    assert t.verification.passed, t.verification.failures


def test_index_ops_run_on_int8_inputs(tmp_path):
    t, sim_cosine = _int8(TopKHead, (4, 16), tmp_path)
    info = t.details["int8"]
    assert info["float_ops"] == [], info["float_ops"]
    assert info["dequantize_ops"] == 1          # only TopK's values go back to float
    assert sim_cosine >= 0.99          # the table on 12 top-3 values: quantization noise
    assert t.verification.passed, t.verification.failures
