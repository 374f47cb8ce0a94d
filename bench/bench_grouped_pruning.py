"""Channel pruning through grouped convolutions: how much of a RegNet-style net goes.

A RegNetX-200MF-shaped net (stem 32, stages of widths 24/56/152/368 and depths
1/1/4/7, group width 8, bottleneck ratio 1, projection shortcuts where the width or
stride changes; random weights and BatchNorm statistics, seeded) at 224x224 is
channel-pruned at 30 % (keep 0.7 per coupled layer group). Prints the conv/linear
weights and FLOPs before and after, how many grouped convs lost channels, and the
per-layer reasons for channels that stayed. Run it against another checkout (with
that checkout first on PYTHONPATH) to compare.

    python bench/bench_grouped_pruning.py [--keep 0.7] [--size 224]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def regnet(widths=(24, 56, 152, 368), depths=(1, 1, 4, 7), gw: int = 8, stem: int = 32):
    import torch
    from torch import nn

    def bn(c):
        b = nn.BatchNorm2d(c)
        with torch.no_grad():
            b.running_mean.normal_(0, 0.1)
            b.running_var.uniform_(0.5, 2.0)
            b.weight.uniform_(0.2, 1.5)
        return b

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn(cout), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, stride, 1, groups=cout // gw,
                                             bias=False), bn(cout), nn.ReLU())
            self.c = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), bn(cout))
            self.proj = None if cin == cout and stride == 1 else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

        def forward(self, x):
            skip = x if self.proj is None else self.proj(x)
            return torch.relu(skip + self.c(self.b(self.a(x))))

    layers = [nn.Conv2d(3, stem, 3, 2, 1, bias=False), bn(stem), nn.ReLU()]
    cin = stem
    for w, d in zip(widths, depths):
        for i in range(d):
            layers.append(Block(cin, w, 2 if i == 0 else 1))
            cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers).eval()


def weights(model) -> int:
    import numpy as np

    return sum(int(np.prod(n.inputs[1].const_value.shape)) for n in model.graph
               if n.op_type in ("Conv", "Gemm", "MatMul") and n.inputs[1].const_value is not None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=float, default=0.7)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    import torch

    from converters.frontends import load_source
    from converters.pruning import prune_channels

    torch.manual_seed(0)
    net = regnet()
    src = load_source(net, (torch.randn(1, 3, args.size, args.size),))
    model = src.model.clone()
    before = weights(model)
    report = prune_channels(model, keep=args.keep)
    after = weights(model)
    grouped = {n.inputs[1].name for n in model.graph
               if n.op_type == "Conv" and int(n.attributes["group"].value
                                                if "group" in n.attributes else 1) > 1}
    pruned = [l for l in report.layers if l["weight"] in grouped and l["after"] < l["before"]]
    print(f"RegNet-style ({sum(1 for _ in grouped)} grouped convs), keep {args.keep}:")
    print(f"  conv/linear weights {before:,} -> {after:,}: {1 - after / before:.1%} removed")
    print(f"  FLOPs {report.flops_before / 1e6:.1f} M -> {report.flops_after / 1e6:.1f} M "
          f"({1 - report.flops_after / report.flops_before:.1%} removed)")
    print(f"  grouped convs that lost channels: {len(pruned)} of {len(grouped)}")
    for w, reasons in list(report.kept.items())[:4]:
        print(f"  kept in {w}: {reasons[0]}")


if __name__ == "__main__":
    main()
