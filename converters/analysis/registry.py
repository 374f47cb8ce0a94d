"""The registry of cost functions: ``(domain, op_type) -> fn(node) -> OpCost``.

One module per op family registers its ops with ``@register("Conv", ...)`` in an
``edgert.op_registry`` table; a second registration of the same op is an error,
not a silent overwrite. The modules are imported on first lookup from the
explicit list below, so ``supported_ops()`` can say what has a cost model.
"""
from __future__ import annotations

from typing import Callable, List, Optional

from edgert.op_registry import OpRegistry

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
_COSTS: OpRegistry[CostFn] = OpRegistry("cost model", modules=_OP_MODULES)


def register(*op_types: str, domain: str = "") -> Callable[[CostFn], CostFn]:
    """Register the decorated function as the cost model of ``op_types``."""
    return _COSTS.register(*op_types, domain=domain)


def lookup(domain: str, op_type: str) -> Optional[CostFn]:
    return _COSTS.lookup(op_type, domain)


def supported_ops() -> List[str]:
    """Every op with a cost model, as ``op`` or ``domain::op``."""
    return _COSTS.labels()
