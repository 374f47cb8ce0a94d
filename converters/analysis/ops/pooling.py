"""Pooling: MaxPool, AveragePool, LpPool and their global forms.

Counted over the full kernel window at every output (padded positions
included, as published figures do): MaxPool k-1 comparisons per output,
AveragePool k-1 adds and a divide = k per output, LpPool 2k per output
(|x|^p and add, then the root). Global pools reduce H*W to one value:
average = numel(in) FLOPs, max = numel(in) - numel(out), Lp = 2*numel(in).
"""
from __future__ import annotations

from converters.analysis.cost import OpCost, prod
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import numel_of, out_numel
from converters.analysis.registry import register


def _kernel(node: NodeView) -> int:
    return prod(node.attr("kernel_shape", []))


@register("MaxPool")
def max_pool(node: NodeView) -> OpCost:
    return OpCost(flops=out_numel(node) * (_kernel(node) - 1))


@register("AveragePool")
def average_pool(node: NodeView) -> OpCost:
    return OpCost(flops=out_numel(node) * _kernel(node))


@register("LpPool")
def lp_pool(node: NodeView) -> OpCost:
    return OpCost(flops=out_numel(node) * 2 * _kernel(node))


@register("GlobalAveragePool")
def global_average_pool(node: NodeView) -> OpCost:
    return OpCost(flops=numel_of(node.input(0), "input"))


@register("GlobalMaxPool")
def global_max_pool(node: NodeView) -> OpCost:
    return OpCost(flops=numel_of(node.input(0), "input") - out_numel(node))


@register("GlobalLpPool")
def global_lp_pool(node: NodeView) -> OpCost:
    return OpCost(flops=2 * numel_of(node.input(0), "input"))
