"""Arguments and helpers shared by the runtime commands (info, run, bench)."""
from __future__ import annotations

import argparse


def add_load_arguments(p: argparse.ArgumentParser) -> None:
    from edgert.cli.checks import int_at_least

    p.add_argument("model", help="model file (.tflite, .mnn or .onnx)")
    p.add_argument("--engine", help="engine to use (litert, mnn, onnxruntime); default: from the file")
    p.add_argument("--threads", type=int_at_least(1), help="CPU threads (default: up to 4)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16"],
                   help="runtime precision where the engine has the switch (MNN)")
    p.add_argument("--no-isolated-check", action="store_true",
                   help="skip the first load in a child process that guards against engine crashes")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that exist (default: refuse, naming them, "
                        "before any work)")


def output_file(path, args) -> str:
    """``path`` checked as an output (its folder writable, not an existing file unless
    --overwrite), before the command does any work."""
    from edgert.outputs import check_output_file

    return str(check_output_file(path, getattr(args, "overwrite", False)))


def load_from_args(args: argparse.Namespace):
    import edgert

    return edgert.load(args.model, engine=args.engine, threads=args.threads,
                       precision=args.precision,
                       check="structure" if args.no_isolated_check else "isolated")


def read_inputs(path: str):
    """Feeds from a .npy (one array, for a single-input model) or a .npz (by input name)."""
    from edgert.files import load_arrays

    return load_arrays(path)


def add_preprocess_arguments(g, prefix: str = "") -> None:
    """How an image becomes a model input (``edgert.preprocess``): the same five flags for
    ``run -i photo.jpg``, ``android-assets`` and calibration images (``prefix="calib-"``)."""
    g.add_argument(f"--{prefix}mean", type=float, nargs="+", default=[0.0], metavar="M",
                   help="per-channel mean after pixel scaling, 1 or C values "
                        "(ImageNet: 0.485 0.456 0.406; default 0)")
    g.add_argument(f"--{prefix}std", type=float, nargs="+", default=[1.0], metavar="S",
                   help="per-channel std after pixel scaling, 1 or C values "
                        "(ImageNet: 0.229 0.224 0.225; default 1)")
    g.add_argument(f"--{prefix}pixel-scale", type=float, default=1.0 / 255.0,
                   help="multiplies 0..255 pixels before mean/std (default 1/255)")
    g.add_argument(f"--{prefix}color", choices=["RGB", "BGR"], default="RGB",
                   help="channel order of 3-channel inputs (default RGB)")
    g.add_argument(f"--{prefix}resize", choices=["stretch", "center_crop"], default="stretch")


def preprocess_options(args: argparse.Namespace, prefix: str = "") -> dict:
    """The flags of ``add_preprocess_arguments`` as ``PreprocessSpec`` keyword arguments."""
    key = prefix.replace("-", "_")
    return {"mean": tuple(getattr(args, f"{key}mean")), "std": tuple(getattr(args, f"{key}std")),
            "pixel_scale": getattr(args, f"{key}pixel_scale"),
            "color": getattr(args, f"{key}color"), "resize": getattr(args, f"{key}resize")}
