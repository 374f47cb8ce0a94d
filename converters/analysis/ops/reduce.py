"""Reductions over axes: an add (or compare) per input element that is folded
into another, so Sum/Max/Min/Prod/ArgMax/ArgMin cost numel(in) - numel(out);
Mean adds one divide per output = numel(in); SumSquare and L1 square (or abs)
every element first = 2*numel(in) - numel(out); L2 adds a root per output =
2*numel(in); LogSum a log per output = numel(in); LogSumExp an exp per element
and a log per output = 2*numel(in). CumSum: one add per element.
"""
from __future__ import annotations

from functools import partial

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import numel_of, out_numel
from converters.analysis.registry import register

# op -> (FLOPs per input element, FLOPs per output element)
REDUCE_FLOPS = {
    "ReduceSum": (1, -1), "ReduceMax": (1, -1), "ReduceMin": (1, -1), "ReduceProd": (1, -1),
    "ArgMax": (1, -1), "ArgMin": (1, -1),
    "ReduceMean": (1, 0), "ReduceLogSum": (1, 0),
    "ReduceSumSquare": (2, -1), "ReduceL1": (2, -1),
    "ReduceL2": (2, 0), "ReduceLogSumExp": (2, 0),
    "CumSum": (1, 0),
}


def _reduce(node: NodeView, per_in: int, per_out: int) -> OpCost:
    n_in = numel_of(node.input(0), "input")
    return OpCost(flops=per_in * n_in + per_out * out_numel(node))


for _op, (_pi, _po) in REDUCE_FLOPS.items():
    register(_op)(partial(_reduce, per_in=_pi, per_out=_po))
