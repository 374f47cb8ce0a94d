"""Normalization: BatchNormalization, LayerNormalization, InstanceNormalization,
GroupNormalization, RMSNormalization, LpNormalization, MeanVarianceNormalization, LRN.

BatchNormalization at inference is a per-channel multiply-add once the engine
has folded its four vectors: 2 FLOPs per element (and when it follows a conv,
the fusion step folds it away entirely). Statistics-computing norms, per element:
add to the mean sum, subtract the mean, square, add to the variance sum, multiply
by 1/std = 5, +1 for a scale, +1 for a bias; per normalized row: divide the two
sums, add epsilon, take 1/sqrt = 4. RMSNormalization: square, add, multiply = 3
per element (+1 scale), 3 per row. LpNormalization (p=2): square, add, divide =
3 per element, 1 root per row (p=1: abs, add, divide). LRN over a window of
``size`` channels: 2*size (squares and adds) + 4 (scale, bias, pow, divide).
"""
from __future__ import annotations

from converters.analysis.cost import OpCost, prod
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import has_input, out_numel, shape_of
from converters.analysis.registry import register

STATS_PER_ELEMENT = 5
STATS_PER_ROW = 4


def _stats_norm(elements: int, rows: int, scale: bool, bias: bool) -> int:
    return elements * (STATS_PER_ELEMENT + int(scale) + int(bias)) + rows * STATS_PER_ROW


@register("BatchNormalization")
def batch_norm(node: NodeView) -> OpCost:
    return OpCost(flops=2 * out_numel(node))


@register("LayerNormalization")
def layer_norm(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    axis = int(node.attr("axis", -1)) % len(x)
    rows = prod(x[:axis])
    return OpCost(flops=_stats_norm(prod(x), rows, has_input(node, 1), has_input(node, 2)),
                  bias_inputs=(2,) if has_input(node, 2) else ())


@register("InstanceNormalization")
def instance_norm(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    return OpCost(flops=_stats_norm(prod(x), x[0] * x[1], True, True), bias_inputs=(2,))


@register("GroupNormalization")
def group_norm(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    rows = x[0] * int(node.attr("num_groups"))
    return OpCost(flops=_stats_norm(prod(x), rows, True, True), bias_inputs=(2,))


@register("RMSNormalization")
def rms_norm(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    axis = int(node.attr("axis", -1)) % len(x)
    return OpCost(flops=prod(x) * (3 + int(has_input(node, 1))) + prod(x[:axis]) * 3)


@register("LpNormalization")
def lp_norm(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    axis = int(node.attr("axis", -1)) % len(x)
    rows = prod(x) // x[axis]
    root = rows if int(node.attr("p", 2)) == 2 else 0
    return OpCost(flops=3 * prod(x) + root)


@register("MeanVarianceNormalization")
def mvn(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    axes = [a % len(x) for a in node.attr("axes", [0, 2, 3])]
    per_row = prod(x[a] for a in axes)
    return OpCost(flops=_stats_norm(prod(x), prod(x) // per_row, False, False))


@register("LRN")
def lrn(node: NodeView) -> OpCost:
    return OpCost(flops=out_numel(node) * (2 * int(node.attr("size")) + 4))
