"""Benchmark: edgert's MNN conversion against MNN's converter alone, over the zoo.

(a) Conversion time: the whole pipeline (ONNX front-end, passes, MNN's
    converter in its child process; no verification) against MNN's converter
    alone on the same ONNX file (the call itself, timed inside its process).
(b) Latency: the MNN file edgert writes against the file MNN's converter
    writes from the same unoptimized ONNX, both run by edgert's runtime on
    MNN (fp32), interleaved A/B rounds, best median of the rounds.

The ONNX is what a user gets from ``torch.onnx.export`` with its defaults
(dynamo exporter, ``optimize=True``), at the models' native resolution; both
sides read that same file. (The raw export edgert's front-end works from,
``optimize=False``, crashes MNN's converter on most of the zoo, so it cannot be
a baseline; ``--export raw`` shows that; ``--export torchscript`` uses the legacy
exporter's file instead.) The machine is shared, so figures are noisy;
ratios from the same run are what to read.

    python bench/bench_convert_mnn.py [--models a,b] [--runs 20] [--rounds 4] [--threads 1]
                                      [--export default|torchscript|raw]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_ALONE = """
import json, sys, time, _tools
args = json.loads(sys.argv[1])
t = time.perf_counter()
_tools.mnnconvert(args)
print("EDGERT_SECONDS", time.perf_counter() - t, flush=True)
"""


def mnn_alone(onnx_path: str, mnn_path: str):
    """MNN's converter alone (child process: it crashes on some graphs). Seconds or None."""
    args = ["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", mnn_path,
            "--bizCode", "edgert"]
    proc = subprocess.run([sys.executable, "-c", _ALONE, json.dumps(args)], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0 or not os.path.exists(mnn_path):
        return None, f"MNN alone failed (exit {proc.returncode})"
    secs = [float(ln.split()[1]) for ln in proc.stdout.splitlines()
            if ln.startswith("EDGERT_SECONDS")]
    return secs[0], ""


def mnn_op_counts(path: str) -> dict:
    """Op type -> count of an MNN file (MNN's expression loader)."""
    from converters.mnn._convert_child import count_ops
    from edgert.native_output import capture_native_output

    with capture_native_output():
        return count_ops(path)


def latency(path_a: str, path_b: str, runs: int, rounds: int, threads: int):
    """Best median (ms) of each file over interleaved rounds (order alternating)."""
    import edgert

    sa = edgert.load(path_a, threads=threads, precision="fp32", check="structure")
    sb = edgert.load(path_b, threads=threads, precision="fp32", check="structure")
    feeds = sa.random_inputs(0)
    med_a, med_b = [], []
    for i in range(rounds):          # A B, B A, A B, ...: no side always runs first
        order = [(sa, med_a), (sb, med_b)] if i % 2 == 0 else [(sb, med_b), (sa, med_a)]
        for sess, meds in order:
            meds.append(sess.benchmark(runs=runs, warmup=3, inputs=feeds).median_ms)
    sa.close()
    sb.close()
    return min(med_a), min(med_b)


def torch_export(model, path: str, dynamo: bool = True) -> None:
    """``torch.onnx.export`` as a user calls it (defaults, or dynamo=False), quietly."""
    import contextlib
    import io
    import logging
    import warnings

    import torch

    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model.module, model.example_inputs, path,
                          input_names=model.input_names, output_names=model.output_names,
                          dynamic_axes=model.dynamic_axes, dynamo=dynamo)
    logging.disable(logging.NOTSET)


def _yes_no(flag) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


def main() -> int:
    from converters import convert, zoo
    from converters.frontends import load_source
    from converters.onnx_io import save_onnx

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(zoo.names()))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--export", default="default", choices=["default", "torchscript", "raw"],
                    help="the shared ONNX: torch.onnx.export defaults (dynamo, optimize=True), "
                         "the TorchScript exporter, or edgert's raw export (optimize=False)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    rows = []
    tmp = tempfile.TemporaryDirectory(prefix="bench-convert-mnn-")
    work = tmp.name
    print(f"{'model':20s} {'nodes':>9s} {'ours s':>7s} {'MNN s':>6s} {'time x':>7s} "
          f"{'ours ms':>8s} {'MNN ms':>7s} {'lat x':>6s} {'same ops':>8s}")
    for name in args.models.split(","):
        onnx_path = os.path.join(work, f"{name}.onnx")
        model = zoo.build(name)
        if args.export == "raw":
            save_onnx(load_source(model).model, onnx_path)
        else:
            torch_export(model, onnx_path, dynamo=args.export == "default")
        alone_mnn = os.path.join(work, f"{name}.alone.mnn")
        t_alone, why = mnn_alone(onnx_path, alone_mnn)
        t = time.perf_counter()
        report = convert(onnx_path, "mnn", out_dir=os.path.join(work, "ours"), name=name,
                         verify=False)
        t_ours = time.perf_counter() - t
        ours = report.target("mnn").path
        lat_ours = lat_alone = same = None
        if t_alone is not None:
            lat_ours, lat_alone = latency(ours, alone_mnn, args.runs, args.rounds, args.threads)
            same = mnn_op_counts(ours) == mnn_op_counts(alone_mnn)
        row = {"model": name, "nodes_before": report.passes.nodes_before,
               "nodes_after": report.passes.nodes_after, "pipeline_s": round(t_ours, 3),
               "passes_s": round(report.passes.seconds, 3), "mnn_alone_s": t_alone,
               "time_ratio": round(t_ours / t_alone, 2) if t_alone else None,
               "latency_ours_ms": lat_ours, "latency_alone_ms": lat_alone,
               "latency_ratio": round(lat_ours / lat_alone, 3) if lat_alone else None,
               "same_mnn_ops": same, "note": why}
        rows.append(row)
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{name:20s} {row['nodes_before']:>4d}>{row['nodes_after']:<4d} "
              f"{t_ours:7.2f} {fmt(t_alone, '6.2f')} {fmt(row['time_ratio'], '7.2f')} "
              f"{fmt(lat_ours, '8.2f')} {fmt(lat_alone, '7.2f')} "
              f"{fmt(row['latency_ratio'], '6.3f')} {_yes_no(same):>8s} {why}")
    ratios = [r["latency_ratio"] for r in rows if r["latency_ratio"]]
    times = [r["time_ratio"] for r in rows if r["time_ratio"]]
    print(f"conversion time ratio (ours / MNN alone): median {statistics.median(times):.2f}")
    print(f"latency ratio (ours / MNN alone): median {statistics.median(ratios):.3f}, "
          f"max {max(ratios):.3f} over {len(ratios)} models")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
