"""The ``edgert`` command line: a registry of subcommands, each in its own module.

A command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
and imports nothing heavy at module level (torch, onnx, MNN are imported inside
``run``), so ``edgert --help`` stays fast and works with only the runtime
installed. Adding a command is one module and one row in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from edgert.errors import EdgertError

# (name, module). Order is the order of `edgert --help`.
COMMANDS = [
    ("info", "edgert.cli.info"),
    ("run", "edgert.cli.run"),
    ("bench", "edgert.cli.bench"),
    ("engines", "edgert.cli.engines"),
    ("convert", "edgert.cli.convert"),
    ("ops", "edgert.cli.ops"),
    ("roofs", "edgert.cli.roofs"),
    ("roofline", "edgert.cli.roofline"),
    ("android-assets", "edgert.cli.android_assets"),
    ("farm", "edgert.cli.farm"),
    ("quant-table", "edgert.cli.quant_table"),
    ("calibrate", "edgert.cli.calibrate"),
    ("quant-debug", "edgert.cli.quant_debug"),
    ("prune", "edgert.cli.prune"),
    ("optimize", "edgert.cli.optimize"),
]


def build_parser() -> argparse.ArgumentParser:
    from edgert import __version__

    parser = argparse.ArgumentParser(
        prog="edgert",
        description="Convert models to MNN and TFLite, run them, benchmark them on edge devices.")
    parser.add_argument("--version", action="version", version=f"edgert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS:
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except EdgertError as exc:
        print(f"edgert {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = _EXTRA_OF.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"edgert {args.command}: error: this needs the {exc.name.split('.')[0]!r} package,"
              f" which is not installed: pip install 'edgert[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# optional packages -> the extra of pyproject.toml that installs them
_EXTRA_OF = {
    "onnx": "convert", "onnx_ir": "convert", "onnxscript": "convert", "torch": "convert",
    "flatbuffers": "convert", "jsonschema": "convert", "matplotlib": "convert",
    "onnxruntime": "onnx", "MNN": "mnn", "ai_edge_litert": "litert",
    "tflite_runtime": "tflite", "paramiko": "farm", "adbutils": "farm", "torchao": "pt2e",
    "PIL": "convert",
}


if __name__ == "__main__":
    sys.exit(main())
