"""Resize (and the older Upsample).

Per output element, with d = the number of dims whose size changes:
nearest copies (0 FLOPs, memory only); linear interpolates separably with
2^d - 1 lerps of 3 FLOPs each (a + w * (b - a)); cubic with (4^d - 1) / 3
one-dimensional 4-tap interpolations of 7 FLOPs each (4 multiplies, 3 adds).
Coordinate and weight computation is per output row/column, not per element,
and is not counted.
"""
from __future__ import annotations

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import out_numel, shape_of
from converters.analysis.registry import register


def _mode(node: NodeView) -> str:
    mode = node.attr("mode", b"nearest")
    return (mode.decode() if isinstance(mode, bytes) else str(mode)).lower()


@register("Resize", "Upsample")
def resize(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    y = shape_of(node.output(0), "output")
    d = sum(1 for a, b in zip(x, y) if a != b)
    mode = _mode(node)
    if mode in ("linear", "bilinear", "trilinear"):
        per = 3 * (2 ** d - 1)
    elif mode in ("cubic", "bicubic"):
        per = 7 * (4 ** d - 1) // 3
    else:
        per = 0
    return OpCost(flops=per * out_numel(node))
