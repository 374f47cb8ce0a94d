"""Full int8 TFLite where the writer rewrites the graph first (PixelShuffle's CRD order)
and for ops with integer outputs (ArgMax, TopK): no layer falls back to float."""
from __future__ import annotations

import numpy as np
import torch

from converters import convert


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
    torch.manual_seed(0)
    m = module().eval()
    x = torch.randn(shape)
    cal = np.random.default_rng(0).standard_normal((16,) + shape[1:]).astype(np.float32)
    rep = convert(m, targets="tflite", example_inputs=(x,), precision="int8",
                  calibration_data=cal, out_dir=tmp_path, raise_on_error=False)
    t = rep.target("tflite")
    assert t.error is None, t.error
    return t


def test_pixel_shuffle_conv_keeps_its_per_channel_scales(tmp_path):
    t = _int8(ConvPixelShuffle, (1, 3, 8, 8), tmp_path)
    info = t.details["int8"]
    assert info["float_ops"] == [], info["float_ops"]
    out = t.verification.outputs[0]
    assert out.cosine >= 0.995, out.cosine


def test_index_ops_run_on_int8_inputs(tmp_path):
    t = _int8(TopKHead, (4, 16), tmp_path)
    info = t.details["int8"]
    assert info["float_ops"] == [], info["float_ops"]
    assert info["dequantize_ops"] == 1          # only TopK's values go back to float
    values, indices, argmin = t.verification.outputs
    assert values.cosine >= 0.999
    assert t.verification.passed
