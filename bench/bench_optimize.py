"""Benchmark: ``edgert optimize`` on a real trained model (issue 18, docs/OPTIMIZE.md).

The MobileNetV2-style net of ``bench/digits_mobilenet.py`` trained on scikit-learn's
digits at 64x64; the held-out quarter (450 images) is the evaluation set (top-1 of
the converted file, run by edgert's runtime). For each target (TFLite, MNN) one
search on this host, goal ``--speedup 2x --max-drop 0.5`` (the issue's acceptance),
measured in process (HostMeter, 1 thread, the minimum of 50 runs). It prints, per
target: the fp32 and uniform choices, the chosen point, its measured speed-up and
accuracy drop, how many searched points beat every uniform choice at equal or lower
latency, the latency prediction's hit rate within +-10 %, and the search's wall time.
Every ratio is against the fp32 file measured in the same run.

    python bench/bench_optimize.py [--targets tflite,mnn] [--epochs 8] [--size 64] [--minutes 15]
                                   [--precisions fp32,int8,int8-mixed] [--out /tmp/bench_optimize]

``--precisions fp32`` is a search without int8: what pruning (and on MNN block
sparsity) reach alone, as on a CPU whose int8 kernels are not faster than fp32.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_flags() -> str:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return "?"
    flags = set(next((l for l in text.splitlines() if l.startswith("flags")), "").split())
    model = next((l.split(":", 1)[1].strip() for l in text.splitlines()
                  if l.startswith("model name")), "?")
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model} ({', '.join(have) or 'no AVX2'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="tflite,mnn")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--size", type=int, default=64, help="image side (at least 64)")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--speedup", default="2x")
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--out", default="/tmp/bench_optimize")
    ap.add_argument("--precisions", default="fp32,int8,int8-mixed",
                    help="per-layer precisions to mix; fp32 alone emulates a CPU whose int8 "
                         "kernels are not fast (pruning and sparsity must carry the speed-up)")
    ap.add_argument("--keep", default="1,0.75,0.5", help="channel keep ratios (default 1,0.75,0.5)")
    ap.add_argument("--no-train", action="store_true", help="no fine-tuning of pruned candidates")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--train-steps", type=int, default=None,
                        help="fine-tuning steps at full pruning depth (default: the trainer's)")
    budget.add_argument("--train-epochs", type=int, default=None,
                        help="instead: fine-tuning epochs for every pruning")
    ap.add_argument("--zoo", type=int, default=0, metavar="RES",
                    help="instead: the zoo's MobileNetV2 at RES, scored by agreement with its "
                         "fp32 top-1 on 64 fixed inputs")
    args = ap.parse_args()
    if args.zoo:
        return zoo_run(args)

    import numpy as np
    import torch

    from bench.digits_mobilenet import accuracy, digits_split, train_digits_net
    from converters.optimize import Goal, SpaceSpec, optimize, parse_speedup

    print(f"cpu: {cpu_flags()}; digits at {args.size}x{args.size}")
    t0 = time.perf_counter()
    data = digits_split(args.size)
    net = train_digits_net(data, epochs=args.epochs, log=print)
    print(f"trained in {time.perf_counter() - t0:.0f} s; torch held-out accuracy "
          f"{accuracy(net, data.x_test, data.y_test) * 100:.2f}% on {len(data.y_test)} images")
    os.makedirs(args.out, exist_ok=True)
    npz = os.path.join(args.out, "digits_test.npz")
    np.savez(npz, x=data.x_test, labels=data.y_test)
    calib = {"x": data.x_train[:64]}
    goal = Goal(speedup=parse_speedup(args.speedup), max_drop=args.max_drop)
    for target in args.targets.split(","):
        precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
        space = SpaceSpec(precisions, tuple(float(k) for k in args.keep.split(",")),
                          sparsities=(0.0, 0.75) if target == "mnn" else (0.0,))
        out = os.path.join(args.out, target)
        t1 = time.perf_counter()
        res = optimize(net, evaluate=npz, goal=goal, target=target, out_dir=out,
                       example_inputs=(torch.from_numpy(data.x_test[:1]),), name="digits",
                       calibration_data=calib, space=space, search_minutes=args.minutes,
                       on_event=_progress(target),
                       train=None if args.no_train else {"x": data.x_train,
                                                         "labels": data.y_train},
                       train_steps=args.train_steps, train_epochs=args.train_epochs)
        _print_result(target, goal, res, time.perf_counter() - t1)
    return 0


def zoo_run(args) -> int:
    """The zoo's MobileNetV2 (seeded weights) at ``args.zoo``: agreement with its fp32
    top-1 on 64 fixed inputs (its example input plus seeded noise, so the classes vary)."""
    import numpy as np

    from converters import zoo
    from converters.optimize import Goal, optimize, parse_speedup

    print(f"cpu: {cpu_flags()}; zoo mobilenet_v2 at {args.zoo}")
    m = zoo.build("mobilenet_v2", resolution=args.zoo)
    x0 = m.example_inputs[0].numpy()
    rng = np.random.default_rng(0)
    x = (x0 + rng.standard_normal((64,) + x0.shape[1:]).astype(np.float32) * 0.5 *
         x0.std()).astype(np.float32)
    os.makedirs(args.out, exist_ok=True)
    npz = os.path.join(args.out, "zoo_inputs.npz")
    np.savez(npz, x=x)
    goal = Goal(speedup=parse_speedup(args.speedup), max_drop=args.max_drop)
    for target in args.targets.split(","):
        t1 = time.perf_counter()
        res = optimize(m.module, evaluate=npz, goal=goal, target=target,
                       out_dir=os.path.join(args.out, f"zoo-{target}"),
                       example_inputs=m.example_inputs, name="mobilenet_v2",
                       search_minutes=args.minutes, on_event=_progress(target))
        _print_result(target, goal, res, time.perf_counter() - t1)
    return 0


def _print_result(target, goal, res, wall) -> None:
    from converters.optimize.report import beats_uniform, hit_rates

    rows = res.rows
    base = next(r for r in rows if r["label"] == "uniform fp32")
    preds = {p["key"]: p for p in res.predictions}
    print(f"\n== {target}: {goal.describe()} -> {'MET' if res.met else 'NOT MET'}; "
          f"search {wall / 60:.1f} min, {len(res.state.results)} candidates")
    print(res.message)
    print(f"{'role':16s} {'candidate':60s} {'acc %':>7s} {'ms':>8s} {'x fp32':>7s} "
          f"{'pred ms':>8s} {'error':>7s} basis")
    for r in rows:
        if r["role"] == "probe":
            continue
        p = preds.get(r["key"])
        pred = "-" if r["predicted_ms"] is None else f"{r['predicted_ms']:.3f}"
        err = "-" if p is None else f"{p['error'] * 100:+.1f}%"
        print(f"{r['role']:16s} {r['label'][:60]:60s} {r['accuracy'] * 100:7.2f} "
              f"{r['ms']:8.3f} {base['ms'] / r['ms']:7.2f} {pred:>8s} {err:>7s} "
              f"{'' if p is None else p['basis']}")
    wins = beats_uniform(rows)
    print(f"searched points strictly better than every uniform choice at equal or lower "
          f"latency: {len(wins)}")
    for line in hit_rates(res.predictions):
        print(f"latency prediction, {line}")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for note in res.state.notes:
        print(f"note: {note[:300]}")
    print(f"report: {res.report_path}")


def _progress(target: str):
    last = [0.0]

    def on_event(e) -> None:
        now = time.perf_counter()
        if e["kind"] == "phase" or now - last[0] > 30:
            last[0] = now
            best = e.get("best") or {}
            print(f"  [{target}] {e.get('phase', e['kind'])}: tried {e['tried']}, "
                  f"best {best.get('label', '-')[:50]} "
                  f"{best.get('ms') or 0:.3f} ms, {e['left_s']:.0f} s left", flush=True)
    return on_event


if __name__ == "__main__":
    raise SystemExit(main())
