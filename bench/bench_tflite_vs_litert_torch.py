"""edgert's TFLite writer against Google's PyTorch path, litert-torch, on the zoo.

For each zoo model, one conversion each side:
  * ours: ``converters.convert(module, targets=["tflite"], verify=False)`` — the
    whole pipeline (torch.onnx export, passes, the direct writer), once with the
    default dynamo exporter and once with ``exporter="torchscript"``; the writer's
    own share (optimized ONNX -> .tflite) is reported too;
  * theirs: ``litert_torch.convert(module, example_inputs).export(path)``, run by
    the python of a separate virtual environment (litert-torch is never a
    dependency of edgert; ``--litert-torch-python``, default
    /work/venv-litert-torch/bin/python) on the same zoo definition and seed.
Then both .tflite files are timed in this process with the same interpreter
(edgert's LiteRT engine, ai-edge-litert, XNNPACK on), the same threads and the
same input, in interleaved rounds (each keeps its best median), and their
outputs are compared (cosine) to show they compute the same function.

Ratios: conversion time ours / theirs (goal < 0.1) for the dynamo pipeline, the
TorchScript pipeline and the writer alone; latency ours / theirs (goal <= 1.0 on
every model). The machine is shared: figures are noisy (about +-3% on latency).

    python bench/bench_tflite_vs_litert_torch.py [--models resnet18,lstm,user:kws_conv1d_stack]
        [--resolution 128] [--threads 1] [--runs 30] [--rounds 5] [--min-seconds 0.3]
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_LT_PYTHON = "/work/venv-litert-torch/bin/python"

# Runs in litert-torch's environment: build the zoo model, convert, export, report JSON.
_THEIRS = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
name, res, out = sys.argv[1], sys.argv[2], sys.argv[3]
import litert_torch, importlib.metadata as md
if name.startswith("user:"):
    from tests.converters.user_modules import BY_NAME
    module, inputs = BY_NAME[name[5:]].build()
else:
    from converters import zoo
    m = zoo.build(name, resolution=None if res == "native" else int(res), seed=0)
    module, inputs = m.module, m.example_inputs
t0 = time.perf_counter()
edge = litert_torch.convert(module, inputs)
edge.export(out)
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0,
                              "version": md.version("litert-torch")}))
"""


def _build(name: str, res):
    """(module or zoo model, example inputs) for a zoo name or ``user:<case>`` (a module of
    tests/converters/user_modules.py)."""
    if name.startswith("user:"):
        from tests.converters.user_modules import BY_NAME
        return BY_NAME[name[5:]].build()
    from converters import zoo
    m = zoo.build(name, resolution=res, seed=0)
    return m, m.example_inputs


def ours(name: str, res, out_dir: str) -> dict:
    from converters import convert
    m, inputs = _build(name, res)
    kw = {} if hasattr(m, "example_inputs") else {"example_inputs": inputs}
    t0 = time.perf_counter()
    rep = convert(m, targets=["tflite"], out_dir=out_dir, verify=False, **kw)
    seconds = time.perf_counter() - t0
    t = rep.target("tflite")
    t1 = time.perf_counter()
    try:
        convert(m, targets=["tflite"], out_dir=os.path.join(out_dir, "ts"), verify=False,
                exporter="torchscript", **kw)
        ts_seconds = time.perf_counter() - t1
    except Exception as exc:   # the TorchScript exporter lacks ops dynamo has (adaptive pools)
        print(f"{name}: TorchScript export failed: {str(exc)[:120]}", file=sys.stderr)
        ts_seconds = float("nan")
    return {"path": t.path, "seconds": seconds, "ts_seconds": ts_seconds,
            "backend_seconds": t.seconds, "transposes": t.details.get("transposes"),
            "ops": sum(t.op_counts.values()), "example": [x.numpy() for x in inputs]}


def theirs(name: str, res, out_dir: str, python: str, timeout: float) -> dict:
    out = os.path.join(out_dir, f"{name.replace(':', '_')}.litert_torch.tflite")
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run([python, "-c", _THEIRS, name, "native" if res is None else str(res),
                               out], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:200]}"}
    return dict(json.loads(lines[0][7:]), path=out)


def _transposes(path: str) -> int:
    from edgert.tflite_file import read_tflite
    return read_tflite(open(path, "rb").read()).op_counts.get("TRANSPOSE", 0)


def latency(paths, feeds, threads: int, runs: int, rounds: int, min_seconds: float):
    """Best median ms of each file over interleaved rounds (the first file goes first in even
    rounds, last in odd ones), and each file's outputs."""
    import edgert
    sessions = [edgert.load(p, engine="litert", threads=threads, check="structure")
                for p in paths]
    outs = [s.run(list(feeds)) for s in sessions]
    best = [float("inf")] * len(paths)
    for rnd in range(rounds):
        order = range(len(sessions)) if rnd % 2 == 0 else reversed(range(len(sessions)))
        for k in order:                       # alternate who goes first: no order bias
            r = sessions[k].benchmark(runs=runs, warmup=5, inputs=list(feeds),
                                      min_seconds=min_seconds)
            best[k] = min(best[k], r.median_ms)
    return best, outs


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated zoo names, or user:<case> for a module "
                    "of tests/converters/user_modules.py (default: the whole zoo)")
    ap.add_argument("--resolution", type=int, default=128,
                    help="image side for image models (sequence models use their native length)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.3,
                    help="each round runs at least this long (tiny models: thousands of runs)")
    ap.add_argument("--litert-torch-python", default=DEFAULT_LT_PYTHON)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from converters import zoo
    from edgert.formatting import fmt_num, print_table

    if not os.path.exists(args.litert_torch_python):
        # the anchor lives outside edgert's dependencies: say how to get it, do not fail
        # `make bench` on machines without it
        print(f"SKIPPED: litert-torch's python not found at {args.litert_torch_python}; "
              "create it with\n  python3 -m venv /work/venv-litert-torch && "
              "/work/venv-litert-torch/bin/pip install torch==2.13.0 litert-torch==0.10.0")
        return 0
    names = args.models.split(",") if args.models else zoo.names()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            res = args.resolution if not name.startswith("user:") and \
                zoo.kind(name) in ("image", "segmentation") else None
            a = ours(name, res, tmp)
            b = theirs(name, res, tmp, args.litert_torch_python, args.timeout)
            rec = {"model": name, "resolution": res or "native", "ours_s": a["seconds"],
                   "ours_torchscript_s": a["ts_seconds"], "ours_writer_s": a["backend_seconds"],
                   "ours_transposes": a["transposes"]}
            if "error" in b:
                rec["litert_torch_error"] = b["error"]
                rows.append([name, fmt_num(a["seconds"]), fmt_num(a["ts_seconds"]),
                             fmt_num(a["backend_seconds"]), "-", "-", "-", "-", "-", "-",
                             f"{a['transposes']}/-", b["error"][:60]])
                records.append(rec)
                continue
            (ms_a, ms_b), (out_a, out_b) = latency([a["path"], b["path"]], a["example"],
                                                    args.threads, args.runs, args.rounds,
                                                    args.min_seconds)
            cos = min(_cos(x, y) for x, y in zip(out_a.values(), out_b.values()))
            t_b = _transposes(b["path"])
            rec.update(litert_torch_s=b["seconds"], litert_torch_version=b["version"],
                       convert_ratio=a["seconds"] / b["seconds"],
                       convert_ratio_torchscript=a["ts_seconds"] / b["seconds"],
                       convert_ratio_writer=a["backend_seconds"] / b["seconds"], ours_ms=ms_a,
                       litert_torch_ms=ms_b, latency_ratio=ms_a / ms_b,
                       litert_torch_transposes=t_b, outputs_cosine=cos)
            records.append(rec)
            rows.append([name, fmt_num(a["seconds"]), fmt_num(a["ts_seconds"]),
                         fmt_num(a["backend_seconds"]), fmt_num(b["seconds"]),
                         f"{rec['convert_ratio']:.3f}", f"{rec['convert_ratio_torchscript']:.3f}",
                         f"{rec['convert_ratio_writer']:.4f}", fmt_num(ms_a),
                         fmt_num(ms_b), f"{rec['latency_ratio']:.2f}",
                         f"{a['transposes']}/{t_b}", f"{cos:.6f}"])
            print(f"{name}: done", file=sys.stderr, flush=True)
    print_table(f"edgert TFLite writer vs litert-torch ({args.threads} thread(s), XNNPACK, "
                f"best median of {args.rounds} interleaved rounds of >= {args.runs} runs and "
                f">= {args.min_seconds} s)",
                ["model", "ours s", "ours s (TS)", "writer s", "litert-torch s", "ratio",
                 "ratio (TS)", "ratio (writer)", "ours ms", "theirs ms", "latency ratio",
                 "TRANSPOSE ours/theirs", "cosine ours~theirs"],
                rows, caption="ours: export (dynamo, or TS = TorchScript) + passes + writer; "
                              "theirs: litert_torch.convert + export. Goals: convert ratio < 0.1,"
                              " latency ratio <= 1.0")
    ok = [r for r in records if "latency_ratio" in r]
    if ok:
        print(f"worst convert ratio {max(r['convert_ratio'] for r in ok):.3f} (dynamo), "
              f"{np.nanmax([r['convert_ratio_torchscript'] for r in ok]):.3f} (TorchScript), "
              f"{max(r['convert_ratio_writer'] for r in ok):.4f} (writer alone); "
              f"worst latency ratio {max(r['latency_ratio'] for r in ok):.2f}, "
              f"geomean latency ratio "
              f"{float(np.exp(np.mean([np.log(r['latency_ratio']) for r in ok]))):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
