"""Which constants of an ONNX graph are layer weights, and their output-channel axis.

Per-channel weight scales run along the output channels, which sit on a
different axis per op in ONNX's layouts: Conv [O, I/g, kH, kW] -> 0,
ConvTranspose [I, O/g, kH, kW] -> 1, Gemm B -> 0 with transB else 1, MatMul
[K, N] -> last. One registry row per op type, used by calibration, the QDQ
extractor, the MNN compression-params exporter and the QAT name matching (an
``edgert.op_registry`` table: a second rule for an op is an error).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import numpy as np

from edgert.op_registry import OpRegistry

AxisFn = Callable[[Dict[str, Any], int], int]      # (node attributes, weight rank) -> axis


class _AxisRule(NamedTuple):
    weight_input: int   # the weight's input index
    fn: AxisFn


_AXIS_RULES: OpRegistry[_AxisRule] = OpRegistry("weight axis rule")


def _rule(op_type: str, index: int):
    def deco(fn: AxisFn) -> AxisFn:
        _AXIS_RULES.add(op_type, _AxisRule(index, fn))
        return fn
    return deco


@_rule("Conv", 1)
def _conv(attrs: Dict[str, Any], rank: int) -> int:
    return 0


@_rule("ConvTranspose", 1)
def _conv_t(attrs: Dict[str, Any], rank: int) -> int:
    return 1


@_rule("Gemm", 1)
def _gemm(attrs: Dict[str, Any], rank: int) -> int:
    return 0 if attrs.get("transB", 0) else 1


@_rule("MatMul", 1)
def _matmul(attrs: Dict[str, Any], rank: int) -> int:
    return rank - 1


WEIGHT_OPS = tuple(_AXIS_RULES.op_types())


@dataclass(frozen=True)
class LayerWeight:
    name: str            # initializer name
    node: str            # consuming node name
    op_type: str
    axis: int            # output-channel axis in the ONNX layout
    shape: tuple
    output: str          # the node's output tensor
    input: str           # the node's data input tensor


def _attrs(node) -> Dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def layer_weights(model) -> List[LayerWeight]:
    """Every constant weight input of a Conv/ConvTranspose/Gemm/MatMul, in graph order."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = dict(inits)
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = n.attribute[0].t
    out: List[LayerWeight] = []
    for n in g.node:
        rule = _AXIS_RULES.of_node(n)
        if rule is None or len(n.input) <= rule.weight_input:
            continue
        wname = n.input[rule.weight_input]
        t = consts.get(wname)
        if t is None or len(t.dims) < 1:
            continue
        rank = len(t.dims)
        if n.op_type == "MatMul" and rank < 2:
            continue
        out.append(LayerWeight(wname, n.name, n.op_type, rule.fn(_attrs(n), rank), tuple(t.dims),
                               n.output[0], n.input[0]))
    return out


def constant_arrays(model) -> Dict[str, np.ndarray]:
    """Initializers and Constant-node values as numpy arrays."""
    from onnx import numpy_helper

    g = model.graph
    arrays = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            arrays[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return arrays


def weight_axis(op_type: str, attrs: Dict[str, Any], rank: int,
                domain: str = "") -> Optional[int]:
    """The output-channel axis of the weight of an ``op_type`` node (None: not a layer)."""
    rule = _AXIS_RULES.lookup(op_type, domain)
    return rule.fn(attrs, rank) if rule else None
