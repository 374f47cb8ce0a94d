"""`make demo`: edgert's main job on a built-in example, printing what it does.

The example is MobileNetV2 from the built-in zoo (torchvision's architecture,
seeded weights) at 96x96. Each step prints a header and a table:

  1. convert it to MNN and to TFLite (edgert's own writer, no TensorFlow) through
     the pass pipeline, each result verified against PyTorch;
  2. run it on every installed engine: outputs against PyTorch, and latency;
  3. quantize: QAT on scikit-learn's digits, full-int8 TFLite and MNN from the
     QAT table, accuracy on the held-out split;
  4. prune: 30 % of the example's channels removed (params, FLOPs, size and
     latency before and after, verified against the masked model), then 80 %
     1x4-block sparse weights (which layers MNN runs sparse, and why);
  5. roofline: where the example's layers sit against this host's measured roofs;
  6. device farm on the host: every file benchmarked, stored in SQLite, reported.

Everything is written under --out (default demo_out/).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

EXAMPLE, RESOLUTION = "mobilenet_v2", 96


def header(text: str) -> None:
    print(f"\n== {text}", flush=True)


def convert_example(out_dir: str):
    """Step 1: one export, both targets, each verified (edgert convert zoo:mobilenet_v2@96)."""
    from converters import convert, zoo
    from edgert.cli.convert import render

    example = zoo.build(EXAMPLE, resolution=RESOLUTION, seed=0)
    report = convert(example, targets=("mnn", "tflite"), out_dir=out_dir, name="example")
    render(report)
    return example, report


def compare_engines(example, report) -> None:
    """Step 2: every installed engine on the same input, against PyTorch."""
    import torch

    import edgert
    from converters.verify import metrics
    from edgert.formatting import fmt_num, print_table

    x = example.example_inputs[0]
    with torch.no_grad():
        reference = example.module(x).numpy()
    files = [report.optimized_path] + [t.path for t in report.targets]
    rows = []
    for path in files:
        s = edgert.load(path, threads=1)
        y = s.run(x.numpy())[s.outputs[0].name]
        m = metrics(reference, y)
        r = s.benchmark(runs=30, warmup=3)
        rows.append([os.path.basename(path), s.engine_version, fmt_num(m["max_abs"]),
                     f"{m['cosine']:.7f}", "yes" if m["top1"] == 1.0 else "NO",
                     fmt_num(r.median_ms), fmt_num(r.p90_ms)])
    print_table(f"every installed engine against PyTorch ({EXAMPLE} @ {RESOLUTION}, 1 thread)",
                ["model", "engine", "max abs err", "cosine", "top-1 same", "median ms",
                 "p90 ms"], rows)


def quantize_example(out_dir: str) -> None:
    """Step 3: QAT on digits -> full-int8 TFLite and MNN from the QAT table."""
    from edgert.formatting import print_table
    from examples.quantize_digits import run

    res = run(os.path.join(out_dir, "int8"), load_check="structure")
    print_table("digits, held-out split: int8 models from the QAT table",
                ["model", "accuracy", "agreement with fake-quant"], res.rows())
    print(f"table: {res.paths['table']}  (edgert quant-table show {res.paths['table']})")


def prune_example(onnx_path: str, out_dir: str, dense: dict) -> None:
    """Step 4: channel pruning and block sparsity (docs/SPARSITY.md)."""
    import edgert
    from converters.prune_model import prune_model
    from edgert.formatting import print_table

    run = prune_model(onnx_path, pattern="channel", sparsity=0.3, targets="mnn,tflite",
                      out_dir=os.path.join(out_dir, "pruned"), name="example")
    print(run.channels.summary())
    rows = []
    for t in run.conversion.targets:
        ms = [edgert.load(p, threads=1).benchmark(runs=30, warmup=3).median_ms
              for p in (dense[t.target], t.path)]
        rows.append([t.target, f"{os.path.getsize(dense[t.target]) / 1e3:.0f}",
                     f"{t.size_bytes / 1e3:.0f}", f"{ms[0]:.3f}", f"{ms[1]:.3f}",
                     f"{ms[0] / ms[1]:.2f}x", f"{t.verification.outputs[0].cosine:.7f}"])
    print_table("30 % of the channels removed (1 thread)",
                ["format", "kB before", "kB after", "ms before", "ms after", "speed-up",
                 "cosine vs masked"], rows)
    sp = prune_model(onnx_path, pattern="1x4", sparsity=0.8, kinds=("conv1x1", "fc"),
                     targets="mnn", out_dir=os.path.join(out_dir, "sparse"), name="example")
    mnn = sp.conversion.target("mnn")
    layers = mnn.details["sparsity"]["layers"]
    sparse = sum(1 for r in layers if r["runs"] == "sparse")
    ms = [edgert.load(p, threads=1).benchmark(runs=30, warmup=3).median_ms
          for p in (dense["mnn"], mnn.path)]
    print_table(f"80 % 1x4-block sparse 1x1 convs and FC in MNN: {sparse} of {len(layers)} "
                f"layers run sparse; {os.path.getsize(dense['mnn']) / 1e3:.0f} -> "
                f"{mnn.size_bytes / 1e3:.0f} kB, {ms[0]:.3f} -> {ms[1]:.3f} ms "
                f"({ms[0] / ms[1]:.2f}x, 1 thread); the first 8 layers:",
                ["weight", "zeros", "runs", "why"],
                [[r["weight"], f"{r['zeros']:.0%}", r["runs"], r["why"]] for r in layers[:8]])


def roofline_example(onnx_path: str, out_dir: str) -> None:
    """Step 5: the example against this host's measured roofs (edgert roofline)."""
    from converters.analysis import analyze
    from converters.roofline import get_roofs, roofline
    from converters.roofline.latency import measure_latency
    from converters.roofline.plot import plot_roofline

    latency_ms, source = measure_latency(onnx_path)
    report = roofline(analyze(onnx_path), get_roofs("host"), "fp32", latency_ms, source)
    plots = plot_roofline(report, os.path.join(out_dir, "roofline.png"))
    print(f"{sum(l.macs for l in report.layers) / 1e6:.1f} MMACs in {len(report.layers)} "
          f"layers; {report.time_share('memory'):.0%} of the bound time is memory-bound; "
          f"roofline bound {report.bound_ms:.3f} ms vs measured {report.latency_ms:.3f} ms "
          f"({source}) -> efficiency {report.efficiency:.0%}")
    print(f"plot: {', '.join(plots)}  (edgert roofline {onnx_path} for the per-layer table)")


def farm_on_host(files, out_dir: str) -> None:
    """Step 6: the device farm with no device attached: the host benchmarks each file.
    The files of one conversion (optimized ONNX, TFLite, MNN) and of its pruned
    conversion are one model; each cell is one file, its precision read from the file
    or its conversion report, its speed-up against the same format's fp32 file."""
    from device_farm import farm
    from device_farm.inventory import Inventory, host_device
    from device_farm.progress import PlainProgress
    from device_farm.report import print_overview, write_report

    db = os.path.join(out_dir, "results.sqlite")
    run = farm.bench(files, inventory=Inventory([host_device()]), devices=["host"], db=db,
                     runs=30, warmup=3, on_event=PlainProgress(sys.stdout))
    print_overview(db, run.run_id)
    report = write_report(db, os.path.join(out_dir, "farm_report"), run.run_id)
    print(run.line() + f"; stored in {db}")
    print(f"report: {report['html']} (one self-contained file; also report.md, report.json)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo_out", help="folder for the files the demo writes")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()

    import edgert

    header(f"1. convert {EXAMPLE} @ {RESOLUTION}x{RESOLUTION} (seeded weights) to MNN and "
           "TFLite, verified against PyTorch")
    example, report = convert_example(args.out)
    files = {t.target: t.path for t in report.targets}
    header("2. run on every installed engine: " + ", ".join(
        f"{k} ({v})" for k, v in edgert.available_engines().items()))
    compare_engines(example, report)
    header("3. quantize: QAT table -> full-int8 TFLite and MNN (scikit-learn's digits)")
    quantize_example(args.out)
    header("4. prune: channels out (smaller, fewer FLOPs), then block-sparse weights")
    prune_example(report.optimized_path, args.out, files)
    header("5. roofline on this host")
    roofline_example(report.optimized_path, args.out)
    header("6. device farm on the host (edgert farm bench / report)")
    pruned = [os.path.join(args.out, "pruned", f"example.{fmt}") for fmt in ("tflite", "mnn")]
    farm_on_host([report.optimized_path, files["tflite"], files["mnn"]]
                 + [p for p in pruned if os.path.exists(p)], args.out)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; files are in {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
