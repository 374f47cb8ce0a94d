"""Benchmark: TFLite full int8 of a ViT, with the residual stream float (normalized tensors
stay float: ``converters/tflite/full_int8.py``, ``NORM_INPUT``) against everything int8,
and against fp32 — accuracy (cosine of the logits against PyTorch on held-out inputs) and
latency (LiteRT through edgert's runtime, 1 thread, median of alternating rounds).

The model is a DeiT-tiny-like ViT built here (patch 16 at 224, width 192, 6 pre-norm
layers, 3 heads, random weights), calibrated on 8 seeded inputs. The "everything int8"
variant is the flow with the rule switched off in-process (``_normalized_tensors``
returning nothing), so both int8 files come from the same table.

    python bench/bench_int8_transformer.py [--rounds 5] [--runs 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vit(width: int = 192, layers: int = 6, heads: int = 3):
    import torch
    from torch import nn

    class ViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, width, 16, 16)
            self.cls = nn.Parameter(torch.randn(1, 1, width) * .02)
            self.pos = nn.Parameter(torch.randn(1, 197, width) * .02)
            layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                               activation="gelu", batch_first=True,
                                               norm_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, 1000)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
            return self.head(self.norm(self.enc(x)[:, 0]))

    torch.manual_seed(0)
    return ViT().eval()


def latency_ms(session, feeds, runs: int) -> float:
    for _ in range(3):
        session.run(feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    import numpy as np
    import torch

    import converters.tflite.full_int8 as full_int8
    import edgert
    from converters import convert
    from converters.verify import metrics

    model = vit()
    g = torch.Generator().manual_seed(1)
    example = torch.randn(1, 3, 224, 224, generator=g)
    calibration = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(8)]
    held_out = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(4)]
    work = tempfile.mkdtemp(prefix="bench-int8-vit-")
    files = {}
    rule = full_int8._normalized_tensors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files["fp32"] = convert(model, "tflite", example_inputs=(example,), verify=False,
                                out_dir=os.path.join(work, "fp32")).target("tflite").path
        for tag, fn in (("int8, residual float", rule),
                        ("int8, everything", lambda ops: set())):
            full_int8._normalized_tensors = fn
            try:
                rep = convert(model, "tflite", example_inputs=(example,), precision="int8",
                              calibration_data=calibration, verify=False,
                              out_dir=os.path.join(work, tag.split(",")[1].strip()))
            finally:
                full_int8._normalized_tensors = rule
            files[tag] = rep.target("tflite").path
    sessions = {k: edgert.load(p, threads=1) for k, p in files.items()}
    name = sessions["fp32"].inputs[0].name
    with torch.no_grad():
        refs = [model(x).numpy() for x in held_out]
    print(f"{'variant':22s} {'cosine (min of 4)':>17s} {'median ms':>10s} {'x fp32':>7s}")
    lat = {k: [] for k in sessions}
    for _ in range(args.rounds):                 # alternating: the machine is shared
        for k, s in sessions.items():
            lat[k].append(latency_ms(s, {name: example.numpy()}, args.runs))
    base = statistics.median(lat["fp32"])
    for k, s in sessions.items():
        cos = min(metrics(r.astype(np.float64), np.asarray(
            next(iter(s.run({name: x.numpy()}).values())), np.float64))["cosine"]
            for r, x in zip(refs, held_out))
        ms = statistics.median(lat[k])
        print(f"{k:22s} {cos:17.4f} {ms:10.2f} {base / ms:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
