"""Benchmark: sparse and channel-pruned models against their dense originals, same run.

(a) MNN, 80% 1x4-block sparse 1x1 convolutions: a stack of six 256-channel 1x1
    convolutions on 28x28 (kernel-level) and MobileNetV2 at 224 with every 1x1
    convolution pruned (model-level), against the dense model. MNN prints nothing
    about sparsity, so two things show whether its sparse path ran: the marks
    MNN's converter wrote into the .mnn file (``converters.mnn.model_reader``) and
    per-op times from MNN's own session callbacks (``runSessionWithCallBackInfo``)
    for the same layer, dense and sparse.
(b) TFLite, sparse FULLY_CONNECTED: an MLP 1024-1024-1024-10 (batch 1) with its
    hidden layers 80% sparse in 1x4 blocks along the input and unstructured (CSR),
    against dense; XNNPACK on (the default: the dense FC runs on XNNPACK, the
    sparse one on LiteRT's built-in kernel) and off (built-in against built-in);
    plus full int8 with 1x16 blocks against dense int8.
(c) MobileNetV2 at 224 with 30% of its channels removed (keep 0.7 per coupled
    layer group) against the original, in MNN and TFLite: latency, size, params
    and FLOPs.
(d) The zoo's transformer encoder on 256 tokens with half of each MLP's hidden
    width removed (channels on the last axis; attention widths and the residual
    stream stay), same measures.

Latency: edgert's runtime, 1 thread, fp32 (MNN precision "high"), interleaved
rounds with the order alternating, the best median of the rounds. The machine is
shared, so figures are noisy; read the ratios from one run.

    python bench/bench_sparsity.py [--runs 20] [--rounds 3] [--threads 1] [--only a,b,c,d]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def best_medians(paths, runs: int, rounds: int, threads: int, **opts):
    """{label: best median ms} over interleaved rounds (order alternating)."""
    import edgert

    sessions = {k: edgert.load(p, threads=threads, check="structure", precision="fp32"
                               if p.endswith(".mnn") else "auto", **opts)
                for k, p in paths.items()}
    feeds = next(iter(sessions.values())).random_inputs(0)
    meds = {k: [] for k in sessions}
    order = list(sessions)
    for r in range(rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            meds[k].append(sessions[k].benchmark(runs=runs, warmup=3, inputs=feeds).median_ms)
    for s in sessions.values():
        s.close()
    return {k: min(v) for k, v in meds.items()}


def mnn_op_times(path: str, threads: int, runs: int = 10):
    """{op name: best ms} from MNN's own per-op callbacks."""
    import numpy as np

    from edgert.native_output import capture_native_output

    with capture_native_output():
        import MNN

        interp = MNN.Interpreter(path)
        sess = interp.createSession({"numThread": threads, "precision": "high"})
        inp = interp.getSessionInput(sess)
        x = np.random.default_rng(0).standard_normal(inp.getShape()).astype(np.float32)
        inp.copyFrom(MNN.Tensor(inp.getShape(), MNN.Halide_Type_Float, x,
                                MNN.Tensor_DimensionType_Caffe))
        start, times = {}, {}

        def begin(tensors, info):
            start[info.getName()] = time.perf_counter()
            return True

        def end(tensors, info):
            name = info.getName()
            times.setdefault(name, []).append(time.perf_counter() - start[name])
            return True

        for _ in range(runs):
            interp.runSessionWithCallBackInfo(sess, begin, end)
    return {k: 1e3 * min(v) for k, v in times.items()}


def table(title, columns, rows):
    from edgert.formatting import print_table

    print_table(title, columns, rows)


def pointwise_stack():
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(*[nn.Sequential(nn.Conv2d(256, 256, 1), nn.ReLU())
                            for _ in range(6)]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.06)
    return model, (torch.randn(1, 256, 28, 28, generator=gen),)


def convert_pair(model, x, table_, out, name, targets, **kw):
    """(dense report, sparse report) of the same (pruned) weights."""
    from converters.api import convert

    dense = convert(model, targets=targets, example_inputs=x, out_dir=os.path.join(out, "dense"),
                    name=name, verify=False, **kw)
    sparse = convert(model, targets=targets, example_inputs=x,
                     out_dir=os.path.join(out, "sparse"), name=name, sparsity_table=table_, **kw)
    return dense, sparse


def bench_mnn(args, out):
    from converters import zoo
    from converters.mnn.model_reader import read_convolutions
    from quant_tables.producers.sparsity_torch import prune_torch

    rows, layer_rows = [], []
    cases = [("pointwise x6 (256ch, 28x28)", *pointwise_stack())]
    zm = zoo.build("mobilenet_v2", resolution=224)
    cases.append(("MobileNetV2 @224, all 1x1", zm.module, zm.example_inputs))
    for label, module, x in cases:
        model = copy.deepcopy(module)
        tab, _ = prune_torch(model, "1x4", 0.8, kinds=("conv1x1",))
        name = "pw" if label.startswith("point") else "mbv2"
        dense, sparse = convert_pair(model, x, tab, out, name, "mnn")
        d, s = dense.target("mnn"), sparse.target("mnn")
        lat = best_medians({"dense": d.path, "sparse": s.path}, args.runs, args.rounds,
                           args.threads)
        convs = {c.name: c for c in read_convolutions(s.path)}
        marked = [c for c in convs.values() if c.sparse]
        n_runs = sum(r["runs"] == "sparse" for r in s.details["sparsity"]["layers"])
        td, ts = mnn_op_times(d.path, args.threads), mnn_op_times(s.path, args.threads)
        shared = [op for op in ts if op in td]
        sp_d = sum(td[op] for op in shared if op in convs and convs[op].sparse)
        sp_s = sum(ts[op] for op in shared if op in convs and convs[op].sparse)
        all_d, all_s = sum(td[op] for op in shared), sum(ts[op] for op in shared)
        rows.append([label, f"{d.size_bytes / 1e6:.2f}", f"{s.size_bytes / 1e6:.2f}",
                     f"{lat['dense']:.2f}", f"{lat['sparse']:.2f}",
                     f"{lat['dense'] / lat['sparse']:.2f}x",
                     f"{all_d:.2f} -> {all_s:.2f} ({all_d / all_s:.2f}x)",
                     f"{sp_d:.2f} -> {sp_s:.2f} ({sp_d / sp_s:.2f}x)",
                     f"{len(marked)} marked, {n_runs} sparse kernel",
                     f"{s.verification.outputs[0].cosine:.7f}"])
        if name == "pw":
            for op, ms in ts.items():
                if op in convs and op in td:
                    c = convs[op]
                    layer_rows.append([op, c.algo, c.block_oc, f"{c.sparsity:.1%}",
                                       f"{td[op]:.3f}", f"{ms:.3f}", f"{td[op] / ms:.2f}x"])
    table("(a) MNN: 80% 1x4-block sparse 1x1 convolutions vs dense (fp32, "
          f"{args.threads} thread)", ["model", "dense MB", "sparse MB", "dense ms", "sparse ms",
                                     "speed-up", "sum of op times ms (MNN callbacks)",
                                     "sparse layers' op times ms", "sparse layers (file)",
                                     "cosine vs masked"], rows)
    table("(a) MNN's per-op callback times of the pointwise stack: the sparse kernel ran",
          ["MNN op", "algo (file)", "block OC", "MNN sparsity", "dense ms", "sparse ms",
           "speed-up"], layer_rows)


def mlp():
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                          nn.Linear(1024, 10)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.03)
    return model, (torch.randn(1, 1024, generator=gen),)


def bench_tflite_fc(args, out):
    import numpy as np

    from quant_tables.producers.sparsity_torch import prune_torch

    rows = []
    base, x = mlp()
    cal = np.random.default_rng(1).standard_normal((64, 1024)).astype(np.float32)
    for pattern, precision in (("ic4", "fp32"), ("unstructured", "fp32"), ("ic16", "int8")):
        model = copy.deepcopy(base)
        tab, _ = prune_torch(model, pattern, 0.8, kinds=("fc",), exclude=r"^4\.")
        kw = {"precision": precision}
        if precision == "int8":
            kw["calibration_data"] = cal
        dense, sparse = convert_pair(model, x, tab, os.path.join(out, pattern), "mlp",
                                     "tflite", **kw)
        d, s = dense.target("tflite"), sparse.target("tflite")
        fmt = ", ".join(sorted({r["format"] for r in s.details["sparsity"]["layers"]}))
        for xnn in (True, False):
            lat = best_medians({"dense": d.path, "sparse": s.path}, args.runs * 5, args.rounds,
                               args.threads, xnnpack=xnn)
            rows.append([f"{pattern} 80% ({fmt})", precision, "on" if xnn else "off",
                         f"{d.size_bytes / 1e6:.2f}", f"{s.size_bytes / 1e6:.2f}",
                         f"{lat['dense']:.3f}", f"{lat['sparse']:.3f}",
                         f"{lat['dense'] / lat['sparse']:.2f}x",
                         f"{s.verification.outputs[0].cosine:.7f}"])
    table(f"(b) TFLite: sparse FULLY_CONNECTED vs dense, MLP 1024-1024-1024-10, batch 1, "
          f"{args.threads} thread", ["weights", "precision", "XNNPACK", "dense MB", "sparse MB",
                                    "dense ms", "sparse ms", "speed-up", "cosine vs masked"],
          rows)


def bench_channels(args, out, name="mobilenet_v2", resolution=224, keep=0.7, tag="c"):
    from converters import zoo
    from converters.api import convert
    from converters.frontends import load_source
    from converters.pruning import plan_channels

    zm = zoo.build(name, resolution=resolution)
    src = load_source(zm)
    tab = plan_channels(src.model.clone(), keep=keep)
    dense = convert(src, targets="mnn,tflite", out_dir=os.path.join(out, "orig"), verify=False)
    pruned = convert(src, targets="mnn,tflite", out_dir=os.path.join(out, "pruned"),
                     sparsity_table=tab)
    p = pruned.pruning
    rows = []
    for target in ("mnn", "tflite"):
        d, s = dense.target(target), pruned.target(target)
        lat = best_medians({"orig": d.path, "pruned": s.path}, args.runs, args.rounds,
                           args.threads)
        rows.append([target, f"{d.size_bytes / 1e6:.2f}", f"{s.size_bytes / 1e6:.2f}",
                     f"{lat['orig']:.2f}", f"{lat['pruned']:.2f}",
                     f"{lat['orig'] / lat['pruned']:.2f}x",
                     f"{s.verification.outputs[0].cosine:.7f}"])
    print(f"\n({tag}) {name} @{resolution}, keep {keep:.0%} of each prunable channel group: "
          f"params {p.params_before / 1e6:.2f} M -> {p.params_after / 1e6:.2f} M, "
          f"{p.flops_before / 1e9:.3f} GFLOPs -> {p.flops_after / 1e9:.3f} GFLOPs "
          f"({p.flops_before / p.flops_after:.2f}x fewer)")
    table(f"({tag}) channel-pruned {name} vs the original ({args.threads} thread)",
          ["format", "orig MB", "pruned MB", "orig ms", "pruned ms", "speed-up",
           "cosine vs masked"], rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="a,b,c,d")
    ap.add_argument("--out", default=None, help="keep the files here (default: a temp dir)")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    import edgert
    print("engines: " + ", ".join(f"{k} {v}" for k, v in edgert.available_engines().items()))
    with tempfile.TemporaryDirectory(prefix="edgert-bench-sparsity-") as tmp:
        out = args.out or tmp
        t0 = time.perf_counter()
        if "a" in parts:
            bench_mnn(args, os.path.join(out, "mnn"))
        if "b" in parts:
            bench_tflite_fc(args, os.path.join(out, "tflite"))
        if "c" in parts:
            bench_channels(args, os.path.join(out, "channels"))
        if "d" in parts:      # channels on the last axis: the encoder's MLP hidden width
            bench_channels(args, os.path.join(out, "channels_tokens"), "transformer_encoder",
                           256, keep=0.5, tag="d")
        print(f"\n{time.perf_counter() - t0:.0f} s; shared machine: figures are noisy, "
              "ratios come from one run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
