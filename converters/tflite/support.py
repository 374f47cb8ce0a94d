"""Can TFLite run this node, and if not, why? Asked of every node before anything is written.

Kept apart from emitting (the ExecuTorch split): a node is supported when a
lowering is registered for its op at the model's opset, the lowering's own
``check`` accepts this particular node (constant weights, known shapes, a padding
or resize mode TFLite has...), and its values have types TFLite kernels take. The
first refusal becomes an ``UnsupportedOpError`` naming the node, its op type, the
reason and the ops that *are* supported.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple, Union

import numpy as np

from converters.layout.graph import opset_of
from converters.tflite import registry
from converters.errors import UnsupportedOpError
from edgert.op_registry import OpKey, OpRegistry, register_all

TARGET = "tflite"

# Ops with no lowering, and why (so the error says more than "not supported"; a function
# of the node when the reason depends on it).
KNOWN_GAPS: OpRegistry[Union[str, Callable[[object], str]]] = OpRegistry("known TFLite gap")
register_all(KNOWN_GAPS, {
    "Loop": "control flow (Loop) is not supported", "If": "control flow (If) is not supported",
    "Scan": "control flow (Scan) is not supported",
    "Einsum": lambda node: _einsum_reason(node),
    "Shape": "Shape of a tensor must be folded to a constant (static shapes)",
    "ConstantOfShape": "ConstantOfShape must be folded to a constant (static shapes)",
    "QuantizeLinear": "QDQ graphs are converted through a quantization table, not directly",
    "DequantizeLinear": "QDQ graphs are converted through a quantization table, not directly",
    "Conv3D": "3-D convolution is not supported",
    "NonZero": "NonZero has a data-dependent output shape; TFLite needs static shapes",
}, source=__name__)


def _einsum_reason(node) -> str:
    from converters.passes.decompose_einsum import refusal_reason

    why = refusal_reason(node)
    return ("TFLite has no einsum kernel; the decompose_einsum pass rewrites equations that "
            "are Transpose/Reshape + MatMul (+ ReduceSum) "
            + (f"but refused this one: {why}" if why else "(it did not run on this graph)"))


_VALUE_TYPES = {np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.int8,
                                      np.uint8, np.bool_, np.int16)}


def _value_reason(node) -> Optional[str]:
    for v in list(node.inputs) + list(node.outputs):
        if v is None or v.dtype is None:
            continue
        try:
            dt = np.dtype(v.dtype.numpy())
        except Exception:  # string, complex, custom types numpy cannot name
            return f"value {v.name!r} has type {v.dtype}, which TFLite kernels do not take"
        if dt not in _VALUE_TYPES:
            return f"value {v.name!r} has type {dt}, which TFLite kernels do not take"
    return None


def node_reason(node, opset: int) -> Optional[str]:
    """Why ``node`` cannot be lowered (``None`` if it can)."""
    key = OpKey.of(node)
    entry = registry.find(key.op_type, key.domain, opset)
    if entry is None:
        others = registry.lowerings_of(key.op_type, key.domain)
        if others:
            spans = ", ".join(f"{lo}..{hi or ''}" for lo, hi in (e.opsets for e in others))
            return f"opset {opset} is outside the supported opsets ({spans})"
        if key.domain:
            return f"custom-domain op {key.label} has no TFLite lowering"
        why = _decomposition_refusal(node)
        if why:
            return f"no TFLite kernel, and its decomposition as other ops does not apply ({why})"
        gap = KNOWN_GAPS.lookup(key.op_type, default="no TFLite lowering for this op")
        return gap(node) if callable(gap) else gap
    reason = _value_reason(node) or (entry.check(node) if entry.check is not None else None)
    if reason:
        why = _decomposition_refusal(node)
        if why:
            reason += f"; its decomposition as other ops does not apply either ({why})"
    return reason


def _decomposition_refusal(node) -> Optional[str]:
    """Why the op's decomposition (``converters.passes.decompose``) cannot take ``node``."""
    from converters.passes import decompose

    return decompose.refusal(node)


def unsupported_nodes(model) -> List[Tuple[object, str]]:
    """Every node TFLite cannot take, with the reason (for reports that list them all)."""
    opset = opset_of(model)
    return [(n, r) for n in model.graph for r in [node_reason(n, opset)] if r]


_DYNAMIC_REASONS = ("unknown at conversion time", "static shape", "folded to a constant",
                    "known at conversion time", "dynamic dim", "dynamic batch",
                    "dynamic sequence")


def dynamic_dims_hint(model, reasons: List[str]) -> str:
    """When nodes fail for want of static dims and the inputs have dynamic ones: how to fix
    them (TFLite kernels take shapes, paddings and sizes as constants)."""
    if not any(k in r for r in reasons for k in _DYNAMIC_REASONS):
        return ""
    dynamic = []
    for v in model.graph.inputs:
        if v.const_value is not None or v.shape is None:
            continue
        dims = [d if isinstance(d, int) else (getattr(d, "value", None) or "?") for d in v.shape]
        if any(not isinstance(d, int) for d in dims):
            dynamic.append((v.name, dims))
    if not dynamic:
        return ""
    name, dims = dynamic[0]
    example = "x".join(str(d) if isinstance(d, int) else ("1" if i == 0 else "224")
                       for i, d in enumerate(dims))
    listed = "; ".join(f"{n} {list(d)}" for n, d in dynamic)
    return (f"The model has dynamic input dims ({listed}): fix them, e.g. --input-shape "
            f"{name}={example} (Python: input_shapes={{'{name}': ({example.replace('x', ', ')})}})")


def graph_reason(model) -> Optional[str]:
    for v in model.graph.inputs:
        if v.shape is None:
            return f"graph input {v.name!r} has an unknown rank"
    for v in model.graph.outputs:
        if v.shape is None:
            return f"graph output {v.name!r} has an unknown shape (run shape inference)"
    return None


def check_model(model) -> None:
    """Raise ``UnsupportedOpError`` for the first node TFLite cannot take."""
    bad = unsupported_nodes(model)
    if bad:
        node, reason = bad[0]
        more = f" ({len(bad) - 1} more unsupported node(s) after it)" if len(bad) > 1 else ""
        raise UnsupportedOpError(node.name or node.outputs[0].name, node.op_type, TARGET,
                                 reason + more, supported=registry.supported_op_names(),
                                 hint=dynamic_dims_hint(model, [r for _, r in bad]))
    reason = graph_reason(model)
    if reason:
        from converters.errors import ConversionError
        raise ConversionError(f"{TARGET}: {reason}")
