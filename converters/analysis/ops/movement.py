"""Data movement and views: no FLOPs.

Views and metadata (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout at
inference, Shape, Size, Constant, ...) are free in every engine: no bytes move.
Copies (Transpose, Concat, Split, Pad, Tile, Expand, Cast, DepthToSpace, ...)
read their inputs and write their outputs. Slice and the Gathers read only what
they output (an embedding lookup does not read the whole table).
"""
from __future__ import annotations

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import out_numel
from converters.analysis.registry import register

VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Shape", "Size",
         "Constant", "ConstantOfShape", "EyeLike", "Range")
COPIES = ("Transpose", "Concat", "Split", "Pad", "Tile", "Expand", "Cast", "CastLike",
          "DepthToSpace", "SpaceToDepth", "ScatterND", "ScatterElements", "ReverseSequence",
          "Compress", "NonZero", "TopK", "OneHot", "Trilu")


@register(*VIEWS)
def view(node: NodeView) -> OpCost:
    return OpCost(free=True)


@register(*COPIES)
def copy(node: NodeView) -> OpCost:
    return OpCost()


@register("Slice", "Gather", "GatherElements", "GatherND")
def partial_read(node: NodeView) -> OpCost:
    """The data input is read only where it is output; indices are read whole."""
    return OpCost(reads={0: out_numel(node)})
