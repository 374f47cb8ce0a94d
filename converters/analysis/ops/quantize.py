"""Quantization ops of QDQ and dynamically quantized graphs.

DequantizeLinear: (x - zero_point) * scale = 2 FLOPs per element.
QuantizeLinear: x / scale, round, + zero_point, saturate = 4 per element.
DynamicQuantizeLinear also finds the range (2 comparisons per element) and
the scale (per tensor, not counted): 6 per element. On weights these ops are
folded at load time (see graph.py) and cost nothing.
"""
from __future__ import annotations

from functools import partial

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import out_numel
from converters.analysis.registry import register

QUANT_FLOPS = {"DequantizeLinear": 2, "QuantizeLinear": 4, "DynamicQuantizeLinear": 6}


def _per_element(node: NodeView, per_element: int) -> OpCost:
    return OpCost(flops=per_element * out_numel(node))


for _op, _cost in QUANT_FLOPS.items():
    register(_op)(partial(_per_element, per_element=_cost))
