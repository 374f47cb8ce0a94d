"""Channel pruning where channels sit on the last axis: transformer and ConvNeXt MLPs
(Linear layers on [batch, tokens, features]), Transposes between NCHW and NHWC, and
Reshapes that keep the last axis. The pruned graph must equal the masked source."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from converters.frontends import load_source
from converters.passes import optimize
from converters.pruning import CLEANUP_PASSES, analyze_channels, prune_channels
from converters.pruning.mask import mask_onnx
from converters.verify import assert_close

from .test_channel_pruning import _ort


class NHWCMixer(nn.Module):
    """conv -> NHWC -> Linear -> GELU -> NCHW -> conv: both the conv's and the Linear's
    channels reach the next layer through a Transpose."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 24)
        self.scale = nn.Parameter(torch.rand(24) + 0.5)
        self.conv2 = nn.Conv2d(24, 8, 1)

    def forward(self, x):
        y = torch.relu(self.conv1(x)).permute(0, 2, 3, 1)
        y = nn.functional.gelu(self.fc(y)) * self.scale
        return self.conv2(y.permute(0, 3, 1, 2))


class TokenMLP(nn.Module):
    """A transformer block's MLP on tokens, with a LayerNorm before it and the tokens
    flattened to rows around the second Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 32)

    def forward(self, x):
        h = nn.functional.gelu(self.fc1(self.norm(x)))
        b, t, c = h.shape
        return x + self.fc2(h.reshape(b * t, c)).reshape(b, t, 32)


def _prune(module, shape, keep=0.5):
    torch.manual_seed(0)
    m = module().eval()
    src = load_source(m, (torch.randn(shape),))
    cleaned = src.model.clone()          # as convert does: masks name the cleaned graph's
    optimize(cleaned, list(CLEANUP_PASSES))   # weights (a Linear's transposed weight)
    pruned = cleaned.clone()
    report = prune_channels(pruned, keep=keep)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    name = src.input_names[0]
    assert {n for n, _, _ in report.mask} <= set(cleaned.graph.initializers)
    masked = _ort(mask_onnx(cleaned, report.mask), {name: x})
    assert np.max(np.abs(masked - _ort(src.model, {name: x}))) > 1e-3     # the mask bites
    assert_close(masked, _ort(pruned, {name: x}), "fp32", module.__name__)
    return report, {row["weight"]: (row["before"], row["after"]) for row in report.layers}, src


def test_channels_cross_nchw_nhwc_transposes():
    report, layers, _ = _prune(NHWCMixer, (1, 3, 6, 6))
    assert layers["conv1.weight"] == (16, 8)
    linear = [w for w in layers if w not in ("conv1.weight", "conv2.weight")]
    assert len(linear) == 1 and layers[linear[0]] == (24, 12)
    assert layers["conv2.weight"] == (8, 8)                          # graph output
    assert report.flops_after < 0.6 * report.flops_before


def test_token_mlp_hidden_width_is_pruned_and_the_normalized_width_kept():
    report, layers, src = _prune(TokenMLP, (2, 5, 32))
    widths = sorted(layers.values())
    assert widths == [(32, 32), (64, 32)], widths       # fc1: 64 -> 32; fc2: residual, kept
    # fc2 writes the residual stream: tied to the graph input x
    assert report.kept["fc2.weight"] == ["32 of 32 channels cannot go: channels of graph "
                                         "input 'x'"]


def test_layer_norm_over_the_channels_freezes_them():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.norm, self.fc2 = nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4)

        def forward(self, x):
            return self.fc2(self.norm(self.fc1(x)))

    torch.manual_seed(0)
    src = load_source(M().eval(), (torch.randn(2, 3, 8),))
    model = src.model.clone()
    optimize(model, list(CLEANUP_PASSES))
    ca = analyze_channels(model)
    fc1 = [w for w, p in ca.by_weight.items() if 16 in p.weight.const_value.shape and
           p.op_type == "MatMul" and p.weight.const_value.shape[0] == 8][0]
    reasons = {ca.classes[r].reason for r in ca.producer_roots(fc1).tolist()}
    assert reasons == {"LayerNormalization 'node_layer_norm' normalizes over the channels"}


@pytest.mark.parametrize("over_channels", [True, False])
def test_a_mean_over_the_channel_axis_freezes_it(over_channels):
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 12)
            self.out = nn.Linear(4 if over_channels else 12, 3)

        def forward(self, x):
            y = torch.relu(self.fc(x))                       # [2, 4, 12], channels last
            return self.out(y.mean(-1) if over_channels else y.mean(1))

    torch.manual_seed(0)
    src = load_source(M().eval(), (torch.randn(2, 4, 8),))
    model = src.model.clone()
    optimize(model, list(CLEANUP_PASSES))
    ca = analyze_channels(model)
    fc = [w for w, p in ca.by_weight.items() if tuple(p.weight.const_value.shape) == (8, 12)][0]
    roots = ca.producer_roots(fc).tolist()
    if over_channels:
        assert not any(ca.removable(r) for r in roots)
        assert "reduces over channels" in ca.classes[roots[0]].reason
    else:      # the tokens are averaged: the 12 features stay channels, on axis 1 now
        assert all(ca.removable(r) for r in roots)
        report = prune_channels(model, keep=0.5)
        assert {(row["before"], row["after"]) for row in report.layers} == {(12, 6), (3, 3)}
