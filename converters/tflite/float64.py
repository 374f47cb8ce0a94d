"""float64 computed as float32 for TFLite, which has no float64 kernels.

PyTorch's TorchScript exporter writes Python float scalars traced next to integer
tensors as float64 constants, so ``(torch.arange(h) + 0.5) * stride`` (a detector's
anchor grid) becomes a float64 island with Casts to DOUBLE, and the graph output turns
float64 while PyTorch itself computed float32. TFLite refused such a model ("has type
float64, which TFLite kernels do not take"); MNN's converter already computes every
double as float. Here every float64 value, constant, Cast target and dtype attribute
of the graph (and its subgraphs) becomes float32, so TFLite runs what PyTorch ran; the
report says how many, and verification still compares the result with the float64
source under the fp32 thresholds.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from converters.passes.subgraphs import all_graphs

_DOUBLE = ir.DataType.DOUBLE
_FLOAT = ir.DataType.FLOAT


def _is_double(v: Any) -> bool:
    return v is not None and v.dtype == _DOUBLE


def has_float64(model: ir.Model) -> bool:
    """Whether any value of ``model`` (any graph) is float64."""
    for graph in all_graphs(model.graph):
        if any(_is_double(v) for v in list(graph.inputs) + list(graph.outputs)):
            return True
        if any(_is_double(v) for v in graph.initializers.values()):
            return True
        for node in graph:
            if any(_is_double(v) for v in node.outputs):
                return True
    return False


def _float32_tensor(t: Any, name: str) -> ir.Tensor:
    return ir.tensor(np.asarray(t.numpy(), dtype=np.float32), name=name)


def demote_float64(model: ir.Model) -> int:
    """Turn every float64 value of ``model`` into float32, in place; returns how many
    values changed."""
    changed = 0
    for graph in all_graphs(model.graph):
        values = list(graph.inputs) + list(graph.initializers.values())
        for node in graph:
            values += [v for v in node.outputs if v is not None]
            _demote_attributes(node)
        for v in values:
            if not _is_double(v):
                continue
            if v.const_value is not None:
                v.const_value = _float32_tensor(v.const_value, v.name or "")
            v.dtype = _FLOAT
            changed += 1
    return changed


def _demote_attributes(node: ir.Node) -> None:
    if node.op_type == "Cast" and node.attributes.get_int("to", 0) == _DOUBLE.value:
        node.attributes["to"] = ir.AttrInt64("to", _FLOAT.value)
    dtype = node.attributes.get("dtype")
    if dtype is not None and dtype.type == ir.AttributeType.INT and dtype.as_int() == \
            _DOUBLE.value:
        node.attributes["dtype"] = ir.AttrInt64("dtype", _FLOAT.value)
    for key in ("value", "value_float"):      # Constant, ConstantOfShape
        attr = node.attributes.get(key)
        if attr is not None and attr.type == ir.AttributeType.TENSOR and \
                attr.as_tensor().dtype == _DOUBLE:
            node.attributes[key] = ir.AttrTensor(key, _float32_tensor(attr.as_tensor(),
                                                                      attr.as_tensor().name or ""))
