"""`make demo`: edgert's main job on a built-in example, printing what it does.

Steps (each prints a header and a table):
  1. build a small image classifier in PyTorch (seeded weights) and export ONNX;
  2. convert it to MNN, and to TFLite with edgert's own writer (no TensorFlow);
  3. run it on every installed engine and compare outputs and latency with the
     PyTorch model in one table;
  4. prune it: remove half of its channels (params, FLOPs, size and latency before
     and after, verified against the masked model), and 80% 1x4-block sparsity
     (which layers MNN runs sparse, and why).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def header(text: str) -> None:
    print(f"\n== {text}")


def build_example(out_dir: str):
    """A small CNN (conv-BN-ReLU x2, pooling, linear) on 1x3x32x32, exported to ONNX."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10)).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    path = os.path.join(out_dir, "example.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"],
                          dynamo=False, opset_version=17)
    print(f"built a {sum(p.numel() for p in model.parameters())}-parameter CNN, exported {path}")
    return model, x, path


def convert_mnn(onnx_path: str, out_dir: str) -> str:
    from edgert.native_output import capture_native_output

    path = os.path.join(out_dir, "example.mnn")
    with capture_native_output() as out:
        import _tools  # MNN's converter through its C binding (never the console script)
        ok = _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                                "--MNNModel", path, "--bizCode", "edgert-demo"])
    if not ok:
        raise SystemExit("MNN conversion failed:\n" + out.text)
    print(f"converted to {path} ({os.path.getsize(path) / 1e3:.1f} kB)")
    return path


def convert_tflite(onnx_path: str, out_dir: str) -> str:
    """ONNX -> .tflite with edgert's writer: passes, NHWC layout, verified on LiteRT."""
    from converters import convert

    rep = convert(onnx_path, targets=["tflite"], out_dir=out_dir, name="example")
    t = rep.target("tflite")
    worst = min(o.cosine for o in t.verification.outputs)
    print(f"converted to {t.path} ({t.size_bytes / 1e3:.1f} kB, {t.seconds:.2f} s): "
          f"{'; '.join(t.notes)}; cosine vs ONNX {worst:.7f}")
    return t.path


def compare_engines(reference: np.ndarray, x: np.ndarray, files) -> None:
    import edgert
    from edgert.cli.output import fmt_num, print_table

    rows = []
    for path in files:
        s = edgert.load(path, threads=1)
        y = s.run(x)[s.outputs[0].name]
        r = s.benchmark(runs=50, warmup=5)
        a, b = y.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        rows.append([os.path.basename(path), s.engine_version, fmt_num(float(np.abs(y - reference).max())),
                     f"{cos:.7f}", "yes" if y.argmax() == reference.argmax() else "NO",
                     fmt_num(r.median_ms), fmt_num(r.p90_ms)])
    print_table("every installed engine against PyTorch (1 thread)",
                ["model", "engine", "max abs err", "cosine", "top-1 same", "median ms", "p90 ms"],
                rows)


def prune_example(onnx_path: str, out_dir: str, dense: dict) -> None:
    """Step 4: channel pruning and block sparsity on the example (docs/SPARSITY.md)."""
    import edgert
    from converters.prune_model import prune_model
    from edgert.cli.output import print_table

    run = prune_model(onnx_path, pattern="channel", sparsity=0.5, targets="mnn,tflite",
                      out_dir=os.path.join(out_dir, "pruned"), name="example")
    print(run.channels.summary())
    rows = []
    for t in run.conversion.targets:
        ms = [edgert.load(p, threads=1).benchmark(runs=50, warmup=5).median_ms
              for p in (dense[t.target], t.path)]
        rows.append([t.target, f"{os.path.getsize(dense[t.target]) / 1e3:.1f}",
                     f"{t.size_bytes / 1e3:.1f}", f"{ms[0]:.3f}", f"{ms[1]:.3f}",
                     f"{t.verification.outputs[0].cosine:.7f}"])
    print_table("half the channels removed (1 thread)", ["format", "kB before", "kB after",
                "ms before", "ms after", "cosine vs masked"], rows)
    sp = prune_model(onnx_path, pattern="1x4", sparsity=0.8, kinds=("conv", "fc"),
                     targets="mnn", out_dir=os.path.join(out_dir, "sparse"), name="example")
    mnn = sp.conversion.target("mnn")
    print_table(f"80% 1x4-block sparse weights in MNN ({mnn.size_bytes / 1e3:.1f} kB, was "
                f"{os.path.getsize(dense['mnn']) / 1e3:.1f} kB)", ["weight", "zeros", "runs", "why"],
                [[r["weight"], f"{r['zeros']:.0%}", r["runs"], r["why"]]
                 for r in mnn.details["sparsity"]["layers"]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo_out", help="folder for the files the demo writes")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import edgert
    import torch

    header("1. build the example model and export ONNX")
    model, x, onnx_path = build_example(args.out)
    with torch.no_grad():
        reference = model(x).numpy()
    header("2. convert")
    mnn_path = convert_mnn(onnx_path, args.out)
    tflite_path = convert_tflite(onnx_path, args.out)
    header("3. run on every installed engine: " + ", ".join(
        f"{k} ({v})" for k, v in edgert.available_engines().items()))
    compare_engines(reference, x.numpy(), [onnx_path, mnn_path, tflite_path])
    header("4. prune: channels out (smaller, fewer FLOPs), then block-sparse weights")
    prune_example(onnx_path, args.out, {"mnn": mnn_path, "tflite": tflite_path})
    print(f"\nfiles are in {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
