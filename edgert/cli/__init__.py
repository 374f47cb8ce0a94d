"""The ``edgert`` command line: a registry of subcommands, each in its own module.

A command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
and imports nothing heavy at module level (torch, onnx, MNN are imported inside
``run``), so ``edgert --help`` stays fast and works with only the runtime
installed. Adding a command is one module and one row in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
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


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for misspelt flags, choices and commands.

    Sub-parsers are this class too (argparse makes them with ``type(parent)``), and
    each records itself on the namespace it parses, so ``main`` can report an
    unknown flag against the sub-command's own options (argparse reports it at the
    top, where only ``--version`` is known).
    """

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = super().parse_known_args(args, namespace)
        if getattr(ns, "_parser", None) is None:     # the innermost sub-command wins
            ns._parser = self
        return ns, extras

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}{_suggestion(self, message)}\n")

    def unknown(self, extras: List[str]) -> None:
        """An error naming every unrecognized argument, with the nearest flag for each."""
        hints = []
        for token in extras:
            flag = token.split("=", 1)[0]
            if flag.startswith("-"):
                close = difflib.get_close_matches(flag, self.flags(), n=1, cutoff=0.6)
                if close:
                    hints.append(f"{flag}: did you mean {close[0]}?")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: unrecognized arguments: {' '.join(extras)}"
                     + (f" ({'; '.join(hints)})" if hints else "") + "\n")

    def flags(self) -> List[str]:
        return [s for s in self._option_string_actions if s.startswith("--")]


def _suggestion(parser: Parser, message: str) -> str:
    """" (did you mean 'x'?)" for argparse's invalid-choice errors."""
    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not m:
        return ""
    choices = re.findall(r"'([^']*)'", m.group(2))
    close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_parser() -> argparse.ArgumentParser:
    from edgert import __version__

    parser = Parser(
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
    args, extras = parser.parse_known_args(argv)
    if extras:
        getattr(args, "_parser", None).unknown(extras)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except EdgertError as exc:
        print(f"edgert {args.command}: error: {in_cli_words(str(exc), args._run)}",
              file=sys.stderr)
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


# How the library names things (its keyword arguments) -> how a command line does. A
# command module may add its own ``CLI_WORDS``; an error message is printed with both.
CLI_WORDS = {
    "pass format= or rename the file": "rename the file to its format's extension",
    "pass overwrite=True": "pass --overwrite",
}


def in_cli_words(message: str, command_run) -> str:
    """``message`` with the library's argument names replaced by the command's flags."""
    module = sys.modules.get(getattr(command_run, "__module__", ""), None)
    words = dict(CLI_WORDS, **getattr(module, "CLI_WORDS", {}))
    for python, cli in words.items():
        message = message.replace(python, cli)
    return message


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
