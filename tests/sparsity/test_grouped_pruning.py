"""Channel pruning through grouped convolutions (ResNeXt, RegNet, ShuffleNet).

A grouped Conv's input and output channels fall into ``group`` blocks; pruning must
take as many channels from every block, keep ``group``, and slice the weight group
by group; a channel shuffle (Reshape-Transpose-Reshape) moves channel a of every
block together. The pruned models equal the masked source in ONNX Runtime and after
conversion to MNN and TFLite; the weight counts are the ones the shapes give.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from converters.frontends import load_source
from converters.pruning import plan_channels, prune_channels
from converters.pruning.mask import mask_onnx
from converters.verify import assert_close

from .test_channel_pruning import _ort

KEEP = 0.7                  # 30 % of each coupled layer group's channels asked


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():          # non-trivial statistics, so the scores and masks matter
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    return bn


class Shuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2) \
            .contiguous().view(n, c, h, w)


class Bottleneck(nn.Module):
    """ResNeXt / RegNet-X: 1x1 -> grouped 3x3 -> 1x1, identity residual."""

    def __init__(self, c: int, w: int, groups: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, w, 1, bias=False), _bn(w), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(w, w, 3, padding=1, groups=groups, bias=False),
                               _bn(w), nn.ReLU())
        self.c = nn.Sequential(nn.Conv2d(w, c, 1, bias=False), _bn(c))

    def forward(self, x):
        return torch.relu(x + self.c(self.b(self.a(x))))


class ShuffleUnit(nn.Module):
    """ShuffleNet v1: grouped 1x1 -> shuffle -> depthwise 3x3 -> grouped 1x1, residual."""

    def __init__(self, c: int, m: int, groups: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, m, 1, groups=groups, bias=False), _bn(m),
                               nn.ReLU(), Shuffle(groups))
        self.dw = nn.Sequential(nn.Conv2d(m, m, 3, padding=1, groups=m, bias=False), _bn(m))
        self.c = nn.Sequential(nn.Conv2d(m, c, 1, groups=groups, bias=False), _bn(c))

    def forward(self, x):
        return torch.relu(x + self.c(self.dw(self.a(x))))


def _net(body, c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), _bn(c), nn.ReLU(), *body,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)).eval()


C, W, GW = 24, 48, 8        # stem / residual width, bottleneck width, group width (RegNet)
NETS = {
    "resnext": lambda: _net([Bottleneck(32, 64, 8)], 32),           # 8 groups of 8
    "regnet": lambda: _net([Bottleneck(C, W, W // GW), Bottleneck(C, W, W // GW)], C),
    "shufflenet": lambda: _net([ShuffleUnit(24, 32, 2)], 24),
}


def _removed(n: int, keep: float = KEEP) -> int:
    return int(round((1 - keep) * n))


def _even(n: int, groups: int, part: int) -> int:
    """Channels left of ``n`` when removal comes in steps of ``part`` per group's share."""
    step = n // part                                 # parts of ``part`` channels each
    return n - (_removed(n) * part // n) * step


def _weights(model) -> int:
    return sum(int(np.prod(n.inputs[1].const_value.shape)) for n in model.graph
               if n.op_type in ("Conv", "Gemm", "MatMul") and n.inputs[1].const_value is not None)


def _source(name: str):
    torch.manual_seed(0)
    module = NETS[name]()
    x = torch.randn(1, 3, 8, 8)
    return module, x, load_source(module, (x,))


def _prune(name: str, keep: float = KEEP):
    module, x, src = _source(name)
    model = src.model.clone()
    report = prune_channels(model, keep=keep)
    return module, x, src, model, report


def _check_groups(model) -> None:
    for n in model.graph:
        if n.op_type != "Conv":
            continue
        group = int(n.attributes["group"].value) if "group" in n.attributes else 1
        w = n.inputs[1].const_value.shape
        assert w[0] % group == 0, n.name
        assert n.inputs[0].shape[1] == w[1] * group, n.name


@pytest.mark.parametrize("name", sorted(NETS))
def test_grouped_nets_prune_evenly_and_equal_the_masked_source(name):
    module, x, src, model, report = _prune(name)
    _check_groups(model)
    ref = _ort(mask_onnx(src.model, report.mask), {"input": x.numpy()})
    assert_close(ref, _ort(model, {"input": x.numpy()}), "fp32", name)
    with torch.no_grad():                             # the mask is not a no-op
        assert np.max(np.abs(module(x).numpy() - ref)) > 1e-2
    after = {l["weight"]: l["after"] for l in report.layers}
    grouped = [l for l in report.layers if "b.0" in l["weight"] or "a.0" in l["weight"]]
    assert grouped and all(l["after"] < l["before"] for l in grouped)
    if name == "regnet":
        # residual stream: 7 of 24 go; inner width 48 in 6 groups of 8: 14 asked, 2 per
        # group (12) removed so every group stays 6 wide
        c, w = C - _removed(C), _even(W, W // GW, GW)
        assert (c, w) == (17, 36)
        assert after["3.a.0.weight"] == after["3.b.0.weight"] == w
        blocks = 2 * (c * w + w * (w // (W // GW)) * 9 + w * c)
        assert _weights(model) == 27 * c + blocks + 10 * c
        before = 27 * C + 2 * (C * W + W * GW * 9 + W * C) + 10 * C
        assert _weights(src.model) == before
        assert 1 - _weights(model) / before == pytest.approx(1 - 6965 / 12408)
        assert any("12 of the 14 channels asked" in r and "equally wide" in r
                   for r in report.kept["3.a.0.weight"])
    if name == "shufflenet":
        # 32 expanded channels: the shuffle ties channel a of both groups (16 classes of
        # 2), the second grouped conv cuts them in 2 parts of 8: 5 classes asked, 2 per part
        assert after["3.a.0.weight"] == 32 - 2 * 2 * 2
        assert after["3.c.0.weight"] == 24 - 6                      # 2 groups of 12: 3 each
        shapes = [list(n.inputs[1].const_value.numpy()) for n in model.graph
                  if n.op_type == "Reshape" and n.inputs[1].const_value is not None and
                  len(n.inputs[1].const_value.shape) and n.inputs[1].const_value.shape[0] == 5]
        assert shapes and shapes[0][1:3] == [2, 12]


def test_a_shuffle_that_splits_classes_across_groups_keeps_the_layer_whole():
    """groups 3 over 12 channels: the shuffle moves 4 classes of 3 channels, and the next
    grouped conv's groups of 4 cut each class differently: no even removal exists."""
    torch.manual_seed(0)
    module = _net([ShuffleUnit(24, 12, 3)], 24)
    x = torch.randn(1, 3, 8, 8)
    src = load_source(module, (x,))
    model = src.model.clone()
    report = prune_channels(model, keep=KEEP)
    after = {l["weight"]: (l["before"], l["after"]) for l in report.layers}
    assert after["3.a.0.weight"] == (12, 12)
    assert after["3.c.0.weight"] == (24, 24 - 6)                   # 3 groups of 8: 2 each
    reasons = report.kept["3.a.0.weight"]
    assert any("group 3" in r and "kept whole" in r for r in reasons), reasons
    assert "kept in 3.a.0.weight" in report.summary()
    _check_groups(model)
    ref = _ort(mask_onnx(src.model, report.mask), {"input": x.numpy()})
    assert_close(ref, _ort(model, {"input": x.numpy()}), "fp32", "shuffle g3")


def test_tables_round_trip_and_uneven_tables_are_refused():
    module, x, src = _source("resnext")
    table = plan_channels(src.model.clone(), keep=KEEP)
    a, b = src.model.clone(), src.model.clone()
    ra, rb = prune_channels(a, keep=KEEP), prune_channels(b, table=table)
    assert [l["after"] for l in ra.layers] == [l["after"] for l in rb.layers]
    # channels of the grouped conv's first group only: that group would be narrower
    e = table.weights["3.b.0.weight"]
    e.pruned = [c for c in range(8)][:3]
    one = type(table)(weights={"3.b.0.weight": e})
    c = src.model.clone()
    rc = prune_channels(c, table=one)
    assert rc.removed_classes == 0
    assert any("unequal numbers" in r for r in rc.kept["3.b.0.weight"])
    e.pruned, e.measured, e.target = None, None, 0.25   # only a target: 2 of every 8
    d = src.model.clone()
    rd = prune_channels(d, table=one)
    assert {l["weight"]: l["after"] for l in rd.layers}["3.b.0.weight"] == 64 - 8 * 2


@pytest.mark.parametrize("name", sorted(NETS))
def test_pruned_grouped_nets_convert_and_verify(name, tmp_path):
    from converters.prune_model import prune_model

    module, x, _ = _source(name)
    run = prune_model(module, pattern="channel", sparsity=1 - KEEP, example_inputs=(x,),
                      targets="mnn,tflite", out_dir=str(tmp_path), name=name)
    assert run.channels.removed_classes > 0
    conv = run.conversion
    assert conv.ok, conv.summary()
    for t in conv.targets:
        assert t.verification is not None and t.verification.outputs
        assert all(o.cosine >= 0.99999 for o in t.verification.outputs), t.target
