"""Argument types that check a flag while the command line is parsed, before any work.

Each is an argparse ``type=``: a bad value is argparse's error (exit 2, the usage and
a message naming the flag), never a traceback or a failure after a long conversion.
They import nothing heavy at module level (``edgert --help`` stays fast).
"""
from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Tuple


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum`` (``--runs 0`` is refused while parsing)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: at least {minimum}")
        return value
    parse.__name__ = f"int>={minimum}"
    return parse


def float_at_least(minimum: float, maximum: float = float("inf")) -> Callable[[str], float]:
    """A finite number >= ``minimum`` (and <= ``maximum`` when given)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not minimum <= value <= maximum or value == float("inf"):
            most = f" and at most {maximum}" if maximum != float("inf") else ""
            raise argparse.ArgumentTypeError(f"{text} is out of range: at least {minimum}{most}")
        return value
    parse.__name__ = f"number>={minimum}"
    return parse


def threshold_item(text: str) -> Tuple[str, float]:
    """``KEY=NUMBER`` where KEY is a verification threshold (converters.verify.Thresholds)."""
    from dataclasses import fields

    from converters.verify import Thresholds
    from converters.options import suggest

    keys = [f.name for f in fields(Thresholds)]
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=NUMBER, e.g. min_cosine=0.9999")
    if key not in keys:
        raise argparse.ArgumentTypeError(f"unknown threshold {key!r}{suggest(key, keys)}; "
                                         f"accepted: {', '.join(keys)}")
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None


def shape_item(text: str) -> Tuple[str, Tuple]:
    """``NAME=1x3x224x224`` (``NAME=1,3,224,224`` is read the same): one input's shape."""
    from edgert.errors import InputError
    from converters.frontends.shapes import parse_shape

    name, sep, dims = text.rpartition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=1x3x224x224")
    try:
        return name.strip(), parse_shape(dims)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def shapes_dict(items: List[Tuple[str, Tuple]], flag: str) -> Dict[str, Tuple]:
    """The parsed ``shape_item`` values by name; a name given twice is an error."""
    from edgert.errors import InputError

    out: Dict[str, Tuple] = {}
    for name, shape in items:
        if name in out:
            raise InputError(f"{flag} gives {name!r} twice")
        out[name] = shape
    return out


PRECISION_CHOICES = ("auto", "fp32", "fp16", "int8_weights", "int4_weights", "int8")


def precision_list(text: str) -> List[str]:
    """``fp32,fp16,int8``: one or more conversion precisions, each once."""
    from converters.options import suggest

    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one precision, e.g. fp32,fp16")
    for name in names:
        if name not in PRECISION_CHOICES:
            raise argparse.ArgumentTypeError(
                f"unknown precision {name!r}{suggest(name, PRECISION_CHOICES)}; accepted: "
                f"{', '.join(PRECISION_CHOICES)} (comma-separated for several)")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a precision twice")
    if "auto" in names and len(names) > 1:
        raise argparse.ArgumentTypeError("auto cannot be combined with other precisions")
    return names
