"""Measured roofs and roofline efficiency on this host.

Part 1, the micro-benchmark against standard references measured in the same
run: edgert.microbench's fp32 GEMM against one large np.matmul (4096^2, the
figure numpy users quote), and its copy bandwidth against libc memcpy (ctypes)
and np.copyto on 256 MiB arrays. Rounds are interleaved and each side keeps its
best, so a noisy neighbour hurts both alike. The micro-benchmark must reach
>= 80% of each reference.

Part 2, zoo models at 224x224 on the host: roofline bound (measured roofs,
fp32) against the median latency in ONNX Runtime and in MNN (converted here
with MNN's converter library), efficiency = bound / measured. Extra converted
files (e.g. a .tflite from the TFLite backend) can be passed as
``--model FILE=SOURCE.onnx``; they are timed and set against their source's bound.

    python bench/bench_roofs.py [--quick] [--strict] [--model m.tflite=m.onnx ...]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ZOO = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "squeezenet",
       "shufflenet_v2")


def _best(call, runs):
    call()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def reference_gemm(n=4096):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    return 2 * n ** 3 / _best(lambda: np.matmul(a, a, out=c), 2) / 1e9


def reference_bandwidth(mb=256):
    src = np.ones(mb * 2 ** 20 // 8)
    dst = np.zeros_like(src)
    memcpy = 2 * src.nbytes / _best(
        lambda: ctypes.memmove(dst.ctypes.data, src.ctypes.data, src.nbytes), 4) / 1e9
    copyto = 2 * src.nbytes / _best(lambda: np.copyto(dst, src), 4) / 1e9
    return memcpy, copyto


def part1(rounds):
    from edgert.microbench import gemm_fp32, memory_bandwidth

    best = {"micro_gemm": 0.0, "ref_gemm": 0.0, "micro_bw": 0.0, "memcpy": 0.0, "copyto": 0.0}
    for _ in range(rounds):
        best["micro_gemm"] = max(best["micro_gemm"], gemm_fp32(1.0).value)
        best["ref_gemm"] = max(best["ref_gemm"], reference_gemm())
        best["micro_bw"] = max(best["micro_bw"], memory_bandwidth(1.0).value)
        m, c = reference_bandwidth()
        best["memcpy"], best["copyto"] = max(best["memcpy"], m), max(best["copyto"], c)
    print(f"== host roofs, best of {rounds} interleaved rounds (shared machine: noisy)")
    rows = [("fp32 GEMM GFLOP/s", best["micro_gemm"], "np.matmul 4096^2", best["ref_gemm"]),
            ("copy GB/s (r+w)", best["micro_bw"], "libc memcpy 256 MiB", best["memcpy"]),
            ("copy GB/s (r+w)", best["micro_bw"], "np.copyto 256 MiB", best["copyto"])]
    ok = True
    for what, micro, ref_name, ref in rows:
        ratio = micro / ref
        ok &= ratio >= 0.8
        print(f"{what:20s} microbench {micro:8.1f}   {ref_name:20s} {ref:8.1f}   "
              f"ratio {ratio:5.2f}  {'ok' if ratio >= 0.8 else 'BELOW 0.8'}")
    return ok


def _export(name, path):
    import torch

    from converters import zoo

    m = zoo.build(name, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m.module, m.example_inputs, path, input_names=m.input_names,
                          output_names=m.output_names, dynamo=False)


def _to_mnn(onnx_path, mnn_path):
    import _tools

    from edgert.native_output import capture_native_output

    with capture_native_output():
        _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                           "--MNNModel", mnn_path, "--bizCode", "edgert"])
    return os.path.exists(mnn_path)


def _latency(path, runs):
    import edgert

    s = edgert.load(path, check="structure")
    r = s.benchmark(runs=runs, warmup=3)
    return r.median_ms, r.engine_version, r.threads


def part2(names, extra, runs):
    from converters.analysis import analyze
    from converters.roofline.devices import roofs_from_dict
    from converters.roofline.model import roofline
    from edgert.microbench import measure_roofs

    roofs = roofs_from_dict("host", measure_roofs(seconds=4.0))
    print(f"\n== zoo at 224x224 on the host: fp32 roofs measured now: "
          f"{roofs.peak_gflops['fp32']:.1f} GFLOP/s, {roofs.bandwidth_gbps:.1f} GB/s "
          f"(ridge {roofs.ridge('fp32'):.1f} FLOP/B)")
    print(f"{'model':20s} {'GMACs':>6s} {'mem%':>5s} {'bound ms':>9s}  {'engine':24s} "
          f"{'threads':>7s} {'median ms':>9s} {'efficiency':>10s}")
    tmp = tempfile.mkdtemp(prefix="edgert-bench-roofs-")
    jobs = []
    for name in names:
        onnx_path = os.path.join(tmp, f"{name}.onnx")
        _export(name, onnx_path)
        files = [onnx_path]
        mnn_path = os.path.join(tmp, f"{name}.mnn")
        try:
            if _to_mnn(onnx_path, mnn_path):
                files.append(mnn_path)
        except Exception as exc:  # noqa: BLE001 - report and go on with ONNX Runtime
            print(f"  ({name}: MNN conversion failed: {exc})")
        jobs.append((name, onnx_path, files))
    for spec in extra:
        path, _, source = spec.partition("=")
        jobs.append((os.path.basename(path), source, [path]))
    for name, source, files in jobs:
        report = roofline(analyze(source), roofs, "fp32")
        for f in files:
            ms, engine, threads = _latency(f, runs)
            gmacs = sum(layer.macs for layer in report.layers) / 1e9
            print(f"{name:20s} {gmacs:6.3f} {report.time_share('memory'):5.0%} "
                  f"{report.bound_ms:9.2f}  {engine:24s} {threads!s:>7s} {ms:9.2f} "
                  f"{report.bound_ms / ms:10.1%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 zoo models, 1 round of part 1")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a ratio is below 0.8")
    ap.add_argument("--model", action="append", default=[], metavar="FILE=SOURCE.onnx",
                    help="also time a converted file against its source ONNX's bound")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    ok = part1(1 if args.quick else 3)
    part2(ZOO[:2] if args.quick else ZOO, args.model, args.runs)
    return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
