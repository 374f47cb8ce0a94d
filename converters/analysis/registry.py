"""The registry of cost functions: ``(domain, op_type) -> fn(node) -> OpCost``.

One module per op family registers its ops with ``@register("Conv", ...)``; a
second registration of the same op is an error, not a silent overwrite. The
modules are imported on first lookup from the explicit list below, so
``supported_ops()`` can say what has a cost model.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Optional, Tuple

CostFn = Callable[["object"], "object"]

_OP_MODULES = (
    "converters.analysis.ops.conv",
    "converters.analysis.ops.matmul",
    "converters.analysis.ops.attention",
    "converters.analysis.ops.pooling",
    "converters.analysis.ops.elementwise",
    "converters.analysis.ops.normalization",
    "converters.analysis.ops.resize",
    "converters.analysis.ops.reduce",
    "converters.analysis.ops.movement",
    "converters.analysis.ops.quantize",
    "converters.analysis.ops.recurrent",
)
_REGISTRY: Dict[Tuple[str, str], CostFn] = {}
_loaded = False

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _key(domain: str, op_type: str) -> Tuple[str, str]:
    return ("" if domain in _DEFAULT_DOMAINS else domain, op_type)


def register(*op_types: str, domain: str = "") -> Callable[[CostFn], CostFn]:
    """Register the decorated function as the cost model of ``op_types``."""
    def deco(fn: CostFn) -> CostFn:
        for op in op_types:
            key = _key(domain, op)
            if key in _REGISTRY:
                raise ValueError(f"cost model for {domain or 'ai.onnx'}::{op} registered twice "
                                 f"({_REGISTRY[key].__module__} and {fn.__module__})")
            _REGISTRY[key] = fn
        return fn
    return deco


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in _OP_MODULES:
            importlib.import_module(mod)
        _loaded = True


def lookup(domain: str, op_type: str) -> Optional[CostFn]:
    _load()
    return _REGISTRY.get(_key(domain, op_type))


def supported_ops() -> List[str]:
    """Every op with a cost model, as ``op`` or ``domain::op``."""
    _load()
    return sorted(op if not d else f"{d}::{op}" for d, op in _REGISTRY)
