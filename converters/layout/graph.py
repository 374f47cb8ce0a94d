"""Small read-only questions about an onnx_ir graph that layout and lowering both ask:
a value's static shape, its constant payload, a node's attributes.

Constants are initializers, values whose producer is a ``Constant`` node, or any
value onnx-ir already knows the payload of (``const_value``).
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from edgert.op_registry import default_opset, is_default_domain

Dim = Optional[int]


def shape_of(value) -> Optional[List[Dim]]:
    """Static dims of ``value`` (``None`` for a symbolic dim), or ``None`` if the rank is unknown."""
    if value is None or value.shape is None:
        return None
    dims: List[Dim] = []
    for d in value.shape:
        dims.append(d if isinstance(d, int) else None)
    return dims


def rank_of(value) -> Optional[int]:
    shape = shape_of(value)
    return None if shape is None else len(shape)


def const_of(value) -> Optional[np.ndarray]:
    """The value's constant payload as a numpy array, or ``None`` if it is computed at run time."""
    if value is None:
        return None
    if value.const_value is not None:
        return np.asarray(value.const_value.numpy())
    node = value.producer()
    if node is not None and node.op_type == "Constant" and is_default_domain(node.domain):
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            attr = node.attributes.get(key)
            if attr is None:
                continue
            if key == "value":
                return np.asarray(attr.value.numpy())
            dtype = np.float32 if "float" in key else np.int64
            return np.asarray(attr.value, dtype=dtype)
    return None


def is_const(value) -> bool:
    """Whether the value is known before run time (cheap: no payload is materialized)."""
    if value is None:
        return False
    if value.const_value is not None:
        return True
    node = value.producer()
    return node is not None and node.op_type == "Constant" and is_default_domain(node.domain)


def attr(node, name: str, default: Any = None) -> Any:
    """An attribute's Python value (ints, floats, strings, lists), or ``default``."""
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def opset_of(model, domain: str = "") -> int:
    """The opset ``model`` imports for ``domain`` (1 when it imports none)."""
    if is_default_domain(domain):
        return default_opset(model.opset_imports, 1)
    return int(model.opset_imports.get(domain, 1))
