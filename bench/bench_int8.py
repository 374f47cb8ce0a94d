"""Full int8 against fp32 on this host, for TFLite (LiteRT, XNNPACK) and MNN, in one run.

    python bench/bench_int8.py [--models mobilenet_v2,resnet18] [--resolution 224]
                               [--threads 1] [--runs 30]

Each zoo model is converted twice per format (fp32, and full int8 with a table
calibrated on seeded random inputs), then each file is timed with
``Session.benchmark`` on the same inputs. Printed per model and format: median
latency of fp32 and int8 and the ratio int8/fp32 (below 1: int8 is faster).
Expect LiteRT int8 with XNNPACK to be faster than fp32; MNN's int8 kernels are
tuned for ARM and may be slower than fp32 on x86 — the ratio is reported as
measured. The host is shared, so figures are noisy: compare ratios, not ms.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def convert_pair(name: str, resolution: int, out: str):
    import torch
    from converters import convert, zoo

    m = zoo.build(name, resolution=resolution, seed=0)
    g = torch.Generator().manual_seed(1)
    cal = {n: torch.randn((4,) + tuple(x.shape[1:]), generator=g).numpy()
           for n, x in zip(m.input_names, m.example_inputs)}
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for precision in ("fp32", "int8"):
            rep = convert(m, targets=("tflite", "mnn"), precision=precision,
                          calibration_data=cal if precision == "int8" else None,
                          out_dir=os.path.join(out, name), exporter="torchscript",
                          load_check="structure", thresholds={"min_cosine": 0.0})
            for t in rep.targets:
                cos = min(o.cosine for o in t.verification.outputs) if t.verification else None
                paths[(t.target, precision)] = (t.path, t.size_bytes, cos)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mobilenet_v2,resnet18")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    import edgert
    from edgert.formatting import print_json, print_table

    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="edgert-bench-int8-") as tmp:
        for name in args.models.split(","):
            paths = convert_pair(name, args.resolution, tmp)
            for target in ("tflite", "mnn"):
                ms = {}
                for precision in ("fp32", "int8"):
                    path = paths[(target, precision)][0]
                    sess = edgert.load(path, threads=args.threads, check="structure")
                    inputs = sess.random_inputs(0)
                    ms[precision] = sess.benchmark(runs=args.runs, warmup=5,
                                                   inputs=inputs).median_ms
                    sess.close()
                ratio = ms["int8"] / ms["fp32"]
                r = {"model": name, "format": target, "resolution": args.resolution,
                     "threads": args.threads, "fp32_ms": ms["fp32"], "int8_ms": ms["int8"],
                     "int8_over_fp32": ratio,
                     "fp32_bytes": paths[(target, "fp32")][1],
                     "int8_bytes": paths[(target, "int8")][1],
                     "int8_cosine": paths[(target, "int8")][2]}
                results.append(r)
                rows.append([name, target, f"{ms['fp32']:.2f}", f"{ms['int8']:.2f}",
                             f"{ratio:.2f}", f"{r['fp32_bytes'] / 1e6:.1f} -> "
                             f"{r['int8_bytes'] / 1e6:.1f} MB", f"{r['int8_cosine']:.4f}"])
    if args.json:
        print_json(results)
    else:
        print_table(f"int8 vs fp32 on this host ({args.resolution}x{args.resolution}, "
                    f"{args.threads} thread(s), median of {args.runs} runs; noisy shared host)",
                    ["model", "format", "fp32 ms", "int8 ms", "int8/fp32", "size",
                     "int8 cosine"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
