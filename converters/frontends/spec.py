"""Model specs as the CLI and ``convert`` accept them, besides ONNX paths:

- ``zoo:NAME`` (or ``zoo:NAME@RES``): a built-in zoo model, e.g. ``zoo:resnet18@96``;
- ``path/to/file.py:ATTR`` or ``package.module:ATTR``: a torch model from Python
  code. ``ATTR`` is an ``nn.Module`` instance, or a callable (class or factory)
  called with no arguments that returns an ``nn.Module``, a ``ZooModel``, or a
  ``(module, example_inputs)`` pair. Loading it runs that file's code, as
  ``python file.py`` would.

Only text that is clearly a spec is imported: ``X.py:ATTR``, or ``a.b.c:ATTR`` made of
Python names. Anything else with a colon is a path that does not exist. A
standard-library module (``os:abort``) and a built-in callable are refused, not run:
neither can be a model, and calling one could end the process.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Optional, Tuple

from edgert.errors import ModelFileError
from converters.errors import ConversionError


def is_spec(text: str) -> bool:
    if text.startswith("zoo:"):
        return True
    if os.path.exists(text):
        return False
    target, sep, attr = text.rpartition(":")
    if not (sep and target and attr.isidentifier()):
        return False
    return target.endswith(".py") or all(p.isidentifier() for p in target.split("."))


# factory names that say nothing about the network: the file (module) names it instead
GENERIC_FACTORIES = frozenset({
    "build", "build_model", "create", "create_model", "factory", "get_model", "get_net",
    "load", "load_model", "main", "make", "make_model", "model", "net", "network"})


def spec_name(text: str) -> str:
    """The default base name of a spec's files: ``resnet18`` for ``zoo:resnet18@96`` and
    ``mynet.py:resnet18``; ``mynet`` for ``mynet.py:build`` and ``pkg.mynet:get_model``
    (a generic factory name would name every user's files ``build.tflite``)."""
    head, _, attr = text.rpartition(":")
    attr = attr.split("@")[0]
    if head != "zoo" and attr.lower() in GENERIC_FACTORIES and head:
        stem = os.path.splitext(os.path.basename(head))[0] if head.endswith(".py") else \
            head.rsplit(".", 1)[-1]
        if stem:
            return stem
    return attr.replace("/", "_")


def resolve_named(obj: Any, name: Optional[str]) -> Tuple[Any, Optional[str]]:
    """(the object a spec names, its default name); anything else passes through. Lets
    ``convert`` see what a spec holds (a QAT or PT2E model brings its own table)."""
    if isinstance(obj, (str, os.PathLike)) and is_spec(os.fspath(obj)):
        return resolve_spec(os.fspath(obj)), name or spec_name(os.fspath(obj))
    if isinstance(obj, (str, os.PathLike)):
        from converters.frontends.torch_files import load_torch_file, torch_file_kind

        if torch_file_kind(os.fspath(obj)) is not None:   # model.pt / model.pt2
            module, inputs, stem = load_torch_file(os.fspath(obj))
            return (module if inputs is None else (module, inputs)), name or stem
    return obj, name


def resolve_spec(text: str) -> Any:
    """A ZooModel, an nn.Module or a (module, example_inputs) pair for ``text``."""
    if text.startswith("zoo:"):
        from converters import zoo

        name, _, res = text[4:].partition("@")
        if res and not res.isdigit():
            raise ConversionError(f"bad zoo spec {text!r}: write zoo:NAME or zoo:NAME@RES")
        return zoo.build(name, resolution=int(res) if res else None)
    target, _, attr = text.rpartition(":")
    module = _import(target)
    if not hasattr(module, attr):
        raise ConversionError(f"{target} has no attribute {attr!r}")
    obj = getattr(module, attr)
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj
    if inspect.isbuiltin(obj) or (callable(obj) and not (
            inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)
            or isinstance(obj, functools.partial))):
        raise ConversionError(f"{text}: {attr} is a built-in {type(obj).__name__}, not a "
                              f"model or a model factory; refusing to call it")
    if callable(obj):
        try:
            return obj()
        except TypeError as exc:
            raise ConversionError(f"{text}: calling {attr}() failed ({exc}); give a factory "
                                  "that takes no arguments") from None
    raise ConversionError(f"{text}: {attr} is neither an nn.Module nor a factory")


def _import(target: str):
    if target.endswith(".py"):
        if not os.path.exists(target):
            raise ModelFileError(f"{target}: no such file")
        name = "_edgert_user_" + os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    top = target.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ConversionError(f"{target!r} is a Python standard-library module, not a model: "
                              f"give an ONNX file, zoo:NAME, file.py:ATTR or your "
                              f"package.module:ATTR")
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ConversionError(f"cannot import {target!r} ({exc})") from None
