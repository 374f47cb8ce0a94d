"""Arguments and helpers shared by the runtime commands (info, run, bench)."""
from __future__ import annotations

import argparse


def add_load_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (.tflite, .mnn or .onnx)")
    p.add_argument("--engine", help="engine to use (litert, mnn, onnxruntime); default: from the file")
    p.add_argument("--threads", type=int, help="CPU threads (default: up to 4)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16"],
                   help="runtime precision where the engine has the switch (MNN)")
    p.add_argument("--no-isolated-check", action="store_true",
                   help="skip the first load in a child process that guards against engine crashes")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def load_from_args(args: argparse.Namespace):
    import edgert

    return edgert.load(args.model, engine=args.engine, threads=args.threads,
                       precision=args.precision,
                       check="structure" if args.no_isolated_check else "isolated")


def read_inputs(path: str):
    """Feeds from a .npy (one array, for a single-input model) or a .npz (by input name)."""
    from edgert.files import load_arrays

    return load_arrays(path)
