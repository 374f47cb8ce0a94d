"""The TFLite lowering registry: ONNX op (+ opset range) -> one lowering function.

A lowering is a plain function ``fn(node, ctx)`` in one of the op-family modules
listed in ``OP_MODULES``, registered with ``@lowering``. The decorator records
what the lowering takes (ONNX op types, domain, opset range), what it emits
(TFLite builtins, for ``edgert ops`` and the docs) and, optionally, a ``check``
that returns the reason it cannot take a particular node (``None`` when it can).
The table is an ``edgert.op_registry.OpRegistry``: a second registration of the
same op over an overlapping opset range is an error, never a silent overwrite.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

from edgert.op_registry import ANY_OPSET, OpRegistry, OpsetRange, OpsetSpec, op_label

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
    "converters.tflite.ops.detection",
    "converters.tflite.control_flow",
)

CheckFn = Callable[[object], Optional[str]]


@dataclass(frozen=True)
class Lowering:
    onnx_op: str
    domain: str
    opsets: OpsetRange
    emits: Tuple[str, ...]
    family: str
    fn: Callable
    check: Optional[CheckFn]
    doc: str

    def covers(self, opset: int) -> bool:
        return self.opsets.covers(opset)

    @property
    def label(self) -> str:
        return op_label(self.domain, self.onnx_op)


LOWERINGS: OpRegistry[Lowering] = OpRegistry("TFLite lowering", modules=OP_MODULES)


def lowering(*onnx_ops: str, emits: Union[Tuple[str, ...], Dict[str, Tuple[str, ...]]],
             opsets: OpsetSpec = ANY_OPSET,
             check: Optional[CheckFn] = None, domain: str = "",
             table: Optional[OpRegistry[Lowering]] = None):
    """Register ``fn(node, ctx)`` as the lowering of ``onnx_ops`` (returns ``fn`` unchanged).

    ``emits`` is a tuple of TFLite builtins, or a dict giving them per ONNX op when one
    function lowers several ops. ``table`` is the registry to add to (default: the TFLite
    registry; tests pass their own).
    """
    reg = LOWERINGS if table is None else table

    def deco(fn: Callable) -> Callable:
        family = fn.__module__.rsplit(".", 1)[-1]
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        for op in onnx_ops:
            out = emits[op] if isinstance(emits, dict) else emits
            entry = Lowering(op, reg.key(op, domain).domain, OpsetRange(*opsets), tuple(out),
                             family, fn, check, doc)
            reg.add(op, entry, domain=domain, opsets=opsets)
        return fn
    return deco


def load_all() -> None:
    """Import every op-family module (each registers its lowerings once)."""
    LOWERINGS.load()


def find(op_type: str, domain: str, opset: int) -> Optional[Lowering]:
    """The lowering for ``op_type`` at ``opset``, or ``None``."""
    return LOWERINGS.lookup(op_type, domain, opset)


def lowerings_of(op_type: str, domain: str = "") -> List[Lowering]:
    return [r.value for r in LOWERINGS.registrations(op_type, domain)]


def all_lowerings() -> List[Lowering]:
    """Every registered lowering, grouped by family in ``OP_MODULES`` order."""
    order = {m.rsplit(".", 1)[-1]: k for k, m in enumerate(OP_MODULES)}
    entries = [r.value for r in LOWERINGS.registrations()]
    return sorted(entries, key=lambda e: (order.get(e.family, 99), e.onnx_op, e.opsets[0]))


def supported_op_names() -> List[str]:
    """ONNX op names with a lowering (custom domains spelled ``domain::Op``)."""
    return LOWERINGS.labels()
