"""Windows of convolutions and pools, and rank-3 (1-D) ops on TFLite's 2-D kernels.

TFLite has CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and 2-D pools only. A 1-D op
(Conv1d, ConvTranspose1d, MaxPool1d, AvgPool1d: NCW in ONNX) is lowered the way
TensorFlow's own ``conv1d`` is: the stored NWC tensor ``[N, W, C]`` is RESHAPEd to
``[N, 1, W, C]``, the 2-D op runs with a ``1 x k`` window, and a RESHAPE gives
``[N, W', C']`` back. The layout planner stores rank-3 feature maps channel-last
(NWC, ``channel_last(3)``) as it stores 2-D ones NHWC, so a Conv1d stack has no
TRANSPOSE between its layers; and the RESHAPE back is dropped when the next 1-D op
reads the rank-4 result directly (``ctx.add_view``), so a stack of 1-D layers runs
as 2-D layers with one RESHAPE at each end.

``window(node)`` gives any conv/pool node's kernel, strides, dilations, pads and
input size lifted to two spatial dims, so the padding choice (SAME / VALID /
explicit PAD) is the 2-D one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from converters.layout.graph import rank_of, shape_of
from converters.tflite.ops.common import onnx_pads, spatial_attrs

SPATIAL_RANKS = (3, 4)


@dataclass
class Window:
    in_hw: List[Optional[int]]       # input spatial size, lifted to 2 dims (1-D: [1, W])
    kernel: List[int]
    strides: List[int]
    dilations: List[int]
    pads: Optional[List[int]]        # [top, left, bottom, right]; None: needs unknown dims


def need_spatial(node) -> Optional[str]:
    """None for a rank-3 (1-D) or rank-4 (2-D) input, else the reason."""
    r = rank_of(node.inputs[0])
    if r is None:
        return "the input rank is unknown"
    if r not in SPATIAL_RANKS:
        return (f"only 1-D and 2-D (NCW / NCHW: rank 3 or 4) inputs are supported, this one "
                f"has rank {r}")
    return None


def window(node) -> Window:
    """The node's window, lifted to two spatial dims."""
    x = shape_of(node.inputs[0])
    n = len(x) - 2
    kernel, strides, dilations = spatial_attrs(node, n)
    pads = onnx_pads(node, x[2:], kernel, strides, dilations)
    if n == 2:
        return Window(list(x[2:]), kernel, list(strides), list(dilations), pads)
    return Window([1, x[2]], [1] + kernel, [1] + list(strides), [1] + list(dilations),
                  None if pads is None else [0, pads[0], 0, pads[1]])


def lift_shape(stored: List[Optional[int]]) -> List[Optional[int]]:
    """Stored ``[N, W, C]`` -> ``[N, 1, W, C]``; a rank-4 shape is returned as it is."""
    return list(stored) if len(stored) == 4 else [stored[0], 1, stored[1], stored[2]]


def input_4d(ctx, node, i: int = 0) -> Tuple[int, List[Optional[int]]]:
    """Input ``i`` (channel-last) as a rank-4 tensor, and its stored shape."""
    x = ctx.input(node, i)
    stored = ctx.stored_shape(node.inputs[i], ctx.input_perm(node, i))
    if len(stored) == 4:
        return x, stored
    shape4 = lift_shape(stored)
    return ctx.view(x, shape4), shape4


def output_4d(ctx, node, value) -> int:
    """The tensor a 2-D op writes ``value`` into: its own for rank 4, a rank-4 temporary
    named after the value (so full int8 finds its table entry) for rank 3."""
    if rank_of(value) == 4:
        return ctx.output(node, value=value)
    return ctx.tmp(value.name, lift_shape(ctx.stored_shape(value)))


def finish_4d(ctx, node, value, t4: int) -> None:
    """After the 2-D op wrote ``t4``: the rank-3 result as a RESHAPE of it (a view)."""
    if rank_of(value) == 4:
        return
    stored = ctx.stored_shape(value)
    out = ctx.output(node, value=value)
    ctx.reshape(t4, out, stored)
    ctx.add_view(out, lift_shape(stored), t4)
