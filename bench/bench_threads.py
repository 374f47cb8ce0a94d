"""Throughput of N threads calling one Session against N threads with a session each.

Same model in every format (a small conv net: ONNX, MNN through MNN's converter,
TFLite through edgert's converter), every session with 1 engine thread, so the
figure is about how calls from several threads share a session:

- ``N sessions``: the baseline, each thread its own session (N copies of the model);
- ``1 session, concurrency=1``: the default, calls on one session take turns;
- ``1 session, concurrency=N``: the session makes an engine instance per overlapping
  call (ONNX Runtime shares one: its run is thread-safe);
- for LiteRT, its raw interpreter shared by the N threads with no lock: what a
  Session did before it had an engine pool (failed calls count as wrong).

Each configuration runs in several short rounds, the configurations alternating so
that the machine's noise hits all of them, with N threads started together; the
figure is the median calls per second and its ratio to the baseline of the same run. Every
output is checked against a reference computed for its own input beforehand, so a
call that returned another thread's output is counted (it must be 0).
Also printed: how many copies of the model (engine instances) each configuration holds;
each copy has its own tensors and, for XNNPACK, its own packed weights.

    python bench/bench_threads.py [--threads 4] [--seconds 6] [--rounds 6]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import edgert  # noqa: E402
from tests.runtime import model_builders as mb  # noqa: E402


def build_models(d: str) -> dict:
    onnx_p = os.path.join(d, "net.onnx")
    mb.conv_stack_onnx(onnx_p, channels=32, size=96, layers=4)
    mnn_p = os.path.join(d, "net.mnn")
    mb.onnx_to_mnn(onnx_p, mnn_p)
    from converters.api import convert

    rep = convert(onnx_p, ["tflite"], out_dir=d, name="net", verify=False)
    return {"onnxruntime": onnx_p, "mnn": mnn_p, "litert": rep.targets[0].path}


class _RawInterpreter:
    """LiteRT's interpreter called directly, as a Session did before its engine pool:
    what N threads sharing it get (errors are counted as calls that failed)."""

    def __init__(self, path: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=path, num_threads=1)
        self.it.allocate_tensors()
        self.i = self.it.get_input_details()[0]["index"]
        self.o = self.it.get_output_details()[0]["index"]
        self.errors = 0

    def run(self, x):
        try:
            self.it.set_tensor(self.i, x)
            self.it.invoke()
            return {"y": self.it.get_tensor(self.o)}
        except (ValueError, RuntimeError):
            self.errors += 1
            return {"y": np.full((1, 10), np.nan, np.float32)}


def run_threads(sessions, inputs, refs, seconds: float):
    """Calls/s of len(sessions) threads, thread k on sessions[k]; and wrong outputs."""
    n = len(sessions)
    counts, wrong = [0] * n, [0] * n
    start = threading.Barrier(n + 1)
    stop = time.perf_counter() + seconds + 1e9   # set after the barrier

    def work(k):
        nonlocal stop
        s = sessions[k]
        start.wait()
        i = k
        while time.perf_counter() < stop:
            j = i % len(inputs)
            out = next(iter(s.run(inputs[j]).values()))
            if not np.allclose(out, refs[j], rtol=1e-4, atol=1e-5):
                wrong[k] += 1
            counts[k] += 1
            i += n
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    stop = time.perf_counter() + seconds
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0), sum(wrong), sum(counts)


def bench_engine(name: str, path: str, n: int, seconds: float, rounds: int) -> None:
    """Every configuration is measured ``rounds`` times, alternating, so that the machine's
    noise hits all of them; the figure is the median calls/s."""
    rng = np.random.default_rng(0)
    first = edgert.load(path, threads=1)
    shape = first.inputs[0].concrete_shape()
    inputs = [rng.standard_normal(shape).astype(np.float32) for _ in range(16)]
    refs = [next(iter(first.run(x).values())) for x in inputs]
    configs = []                       # (label, sessions of the N threads, model copies)
    own = [first] + [edgert.load(path, threads=1) for _ in range(n - 1)]
    configs.append((f"{n} sessions (baseline)", own, n))
    configs.append(("1 thread, 1 session", [first], 1))
    for conc in (1, n):
        shared = edgert.load(path, threads=1, concurrency=conc)
        run_threads([shared] * n, inputs, refs, 0.3)   # makes its instances
        configs.append((f"1 session, concurrency={conc}", [shared] * n, shared._pool.instances))
    if name == "litert":
        configs.append(("raw interpreter, no lock", [_RawInterpreter(path)] * n, 1))
    tputs = {label: [] for label, _, _ in configs}
    wrong = {label: [0, 0] for label, _, _ in configs}
    for _ in range(rounds):
        for label, sessions, _ in configs:
            tput, bad, calls = run_threads(sessions, inputs, refs, seconds / rounds)
            tputs[label].append(tput)
            wrong[label][0] += bad
            wrong[label][1] += calls
    base = statistics.median(tputs[configs[0][0]])
    for label, _, copies in configs:
        tput = statistics.median(tputs[label])
        print(f"{name:12s} {label:28s} {tput:8.1f} calls/s  ratio {tput / base:5.2f}  "
              f"wrong or failed {wrong[label][0]}/{wrong[label][1]}  model copies {copies}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0, help="per configuration, in all")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        models = build_models(d)
        print(f"{args.threads} threads, {args.seconds:g} s per configuration in "
              f"{args.rounds} alternating rounds (median), {os.cpu_count()} CPUs, "
              "1 engine thread per session")
        for name, path in models.items():
            bench_engine(name, path, args.threads, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
