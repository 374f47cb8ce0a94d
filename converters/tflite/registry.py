"""The TFLite lowering registry: ONNX op (+ opset range) -> one lowering function.

A lowering is a plain function ``fn(node, ctx)`` in one of the op-family modules
listed in ``OP_MODULES``, registered with ``@lowering``. The decorator records
what the lowering takes (ONNX op types, domain, opset range), what it emits
(TFLite builtins, for ``edgert ops`` and the docs) and, optionally, a ``check``
that returns the reason it cannot take a particular node (``None`` when it can).
A second registration of the same op over an overlapping opset range is an
error, never a silent overwrite.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

# The explicit import list: one module per op family. Order is the order of `edgert ops`.
OP_MODULES = (
    "converters.tflite.ops.conv",
    "converters.tflite.ops.pool",
    "converters.tflite.ops.fc",
    "converters.tflite.ops.elementwise",
    "converters.tflite.ops.activation",
    "converters.tflite.ops.shape",
    "converters.tflite.ops.reduce",
    "converters.tflite.ops.resize",
    "converters.tflite.ops.norm",
    "converters.tflite.ops.recurrent",
)

CheckFn = Callable[[object], Optional[str]]


@dataclass(frozen=True)
class Lowering:
    onnx_op: str
    domain: str
    opsets: Tuple[int, Optional[int]]
    emits: Tuple[str, ...]
    family: str
    fn: Callable
    check: Optional[CheckFn]
    doc: str

    def covers(self, opset: int) -> bool:
        lo, hi = self.opsets
        return opset >= lo and (hi is None or opset <= hi)


_REGISTRY: Dict[Tuple[str, str], List[Lowering]] = {}
_loaded = False


def lowering(*onnx_ops: str, emits: Union[Tuple[str, ...], Dict[str, Tuple[str, ...]]],
             opsets: Tuple[int, Optional[int]] = (1, None),
             check: Optional[CheckFn] = None, domain: str = "",
             table: Optional[Dict[Tuple[str, str], List[Lowering]]] = None):
    """Register ``fn(node, ctx)`` as the lowering of ``onnx_ops`` (returns ``fn`` unchanged).

    ``emits`` is a tuple of TFLite builtins, or a dict giving them per ONNX op when one
    function lowers several ops. ``table`` is the registry to add to (default: the TFLite
    registry; tests pass their own).
    """
    reg = _REGISTRY if table is None else table

    def deco(fn: Callable) -> Callable:
        family = fn.__module__.rsplit(".", 1)[-1]
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        for op in onnx_ops:
            out = emits[op] if isinstance(emits, dict) else emits
            entry = Lowering(op, domain, opsets, tuple(out), family, fn, check, doc)
            for other in reg.get((domain, op), []):
                if _overlap(other.opsets, opsets):
                    raise ValueError(
                        f"lowering for {domain or 'ai.onnx'}::{op} opsets {opsets} registered "
                        f"twice ({other.fn.__module__}.{other.fn.__name__} and "
                        f"{fn.__module__}.{fn.__name__})")
            reg.setdefault((domain, op), []).append(entry)
        return fn
    return deco


def _overlap(a: Tuple[int, Optional[int]], b: Tuple[int, Optional[int]]) -> bool:
    a_hi = a[1] if a[1] is not None else 1 << 30
    b_hi = b[1] if b[1] is not None else 1 << 30
    return a[0] <= b_hi and b[0] <= a_hi


def load_all() -> None:
    """Import every op-family module (each registers its lowerings once)."""
    global _loaded
    if _loaded:
        return
    for mod in OP_MODULES:
        importlib.import_module(mod)
    _loaded = True


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def find(op_type: str, domain: str, opset: int) -> Optional[Lowering]:
    """The lowering for ``op_type`` at ``opset``, or ``None``."""
    load_all()
    for entry in _REGISTRY.get((_norm_domain(domain), op_type), []):
        if entry.covers(opset):
            return entry
    return None


def lowerings_of(op_type: str, domain: str = "") -> List[Lowering]:
    load_all()
    return list(_REGISTRY.get((_norm_domain(domain), op_type), []))


def all_lowerings() -> List[Lowering]:
    """Every registered lowering, grouped by family in ``OP_MODULES`` order."""
    load_all()
    order = {m.rsplit(".", 1)[-1]: k for k, m in enumerate(OP_MODULES)}
    entries = [e for group in _REGISTRY.values() for e in group]
    return sorted(entries, key=lambda e: (order.get(e.family, 99), e.onnx_op, e.opsets[0]))


def supported_op_names() -> List[str]:
    """ONNX op names with a lowering (custom domains spelled ``domain::Op``)."""
    return sorted({(f"{e.domain}::{e.onnx_op}" if e.domain else e.onnx_op)
                   for e in all_lowerings()})
