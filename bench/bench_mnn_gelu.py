"""Benchmark: what the exact GELU costs on MNN.

MNN's converter fuses ONNX's Gelu (and the erf pattern x * 0.5 * (1 + erf(x / sqrt 2)))
into its own GELU kernel, an approximation (max abs error 4.7e-4 on [-6, 6]); edgert
writes the exact form in a shape MNN does not fuse (converters/mnn/rewrite_ops.py: a few
elementwise ops and one ERF). This converts a model twice from the same optimized ONNX
(edgert's MNN backend; MNN's converter alone, fused) and times both files with edgert's
runtime, interleaved rounds, best median; it prints the latency ratio exact / fused and
both files' max abs error against ONNX Runtime on the same input.

    python bench/bench_mnn_gelu.py [--models transformer_encoder,gelu_mlp] [--runs 50]
                                   [--rounds 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _gelu_mlp():
    """Linear 256 -> 1024, GELU, Linear 1024 -> 256 over 64 tokens (a transformer's MLP)."""
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(),
                                 torch.nn.Linear(1024, 256)).eval()
    return module, (torch.randn(1, 64, 256),)


def _source(name: str):
    if name == "gelu_mlp":
        return _gelu_mlp()
    from converters import zoo

    z = zoo.build(name)
    return z.module, z.example_inputs


def _median_ms(sess, feeds, runs: int) -> float:
    import time

    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(feeds)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def bench(name: str, runs: int, rounds: int, threads: int) -> dict:
    import edgert
    import onnxruntime as ort
    from converters import convert
    from bench.bench_convert_mnn import mnn_alone

    module, example = _source(name)
    with tempfile.TemporaryDirectory() as tmp:
        report = convert(module, example_inputs=example, targets=["mnn"], out_dir=tmp,
                         name=name, verify=False)
        exact = report.target("mnn").path
        fused = os.path.join(tmp, "fused.mnn")
        mnn_alone(report.optimized_path, fused)
        ref_sess = ort.InferenceSession(report.optimized_path, providers=["CPUExecutionProvider"])
        names = [i.name for i in ref_sess.get_inputs()]
        feeds = {n: t.numpy() for n, t in zip(names, example)}
        ref = ref_sess.run(None, feeds)[0]
        sessions = {k: edgert.load(p, threads=threads, precision="fp32", check="structure")
                    for k, p in (("exact", exact), ("fused", fused))}
        errs = {k: float(np.abs(np.asarray(list(s.run(feeds).values())[0]) - ref).max())
                for k, s in sessions.items()}
        best = {k: float("inf") for k in sessions}
        for r in range(rounds):
            order = ("exact", "fused") if r % 2 == 0 else ("fused", "exact")
            for k in order:
                best[k] = min(best[k], _median_ms(sessions[k], feeds, runs))
        for s in sessions.values():
            s.close()
    return {"model": name, "exact_ms": best["exact"], "fused_ms": best["fused"],
            "ratio": best["exact"] / best["fused"], "exact_err": errs["exact"],
            "fused_err": errs["fused"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="transformer_encoder,gelu_mlp")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print("| model | exact ms | fused ms | latency exact/fused | max abs err exact | fused |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        r = bench(name, args.runs, args.rounds, args.threads)
        print(f"| {r['model']} | {r['exact_ms']:.4g} | {r['fused_ms']:.4g} | {r['ratio']:.3f} "
              f"| {r['exact_err']:.2g} | {r['fused_err']:.2g} |")


if __name__ == "__main__":
    main()
