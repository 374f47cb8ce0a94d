"""Pooling: MaxPool / AveragePool -> MAX_POOL_2D / AVERAGE_POOL_2D (1-D pools on a
``[N, 1, W, C]`` view, see ``spatial.py``); global pools -> MEAN / REDUCE_MAX over the
stored spatial axes (XNNPACK runs both as global pooling).

Explicit pads for a max pool are filled with the lowest float (PADV2), so a
padded cell never wins, or with zeros (PAD) when the input is known non-negative
(after a Relu), which XNNPACK delegates and PADV2 it does not. An average pool pads only when it counts the padding
(``count_include_pad=1``: zeros, PAD); otherwise only SAME's own pads are
representable, since TFLite's SAME average excludes padded cells like ONNX does.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr
from converters.tflite.ops.common import choose_padding
from converters.tflite.ops.conv import pad_input
from converters.tflite.ops.spatial import (
    finish_4d, input_4d, need_spatial, output_4d, window)
from converters.tflite.registry import lowering
from converters.tflite.schema import options, padding

_LOWEST = float(np.finfo(np.float32).min)


def _choice(node):
    win = window(node)
    if win.pads is None:
        return None
    return choose_padding(win.in_hw, win.kernel, win.strides, win.dilations, win.pads,
                          bool(attr(node, "ceil_mode", 0)))


def non_negative(value, ctx) -> bool:
    """True when ``value`` comes from an op whose output is never negative (then a max pool
    may pad with zeros: PAD, which XNNPACK runs, instead of PADV2 with -inf, which it does not)."""
    node = value.producer()
    if node is None:
        return False
    if node.op_type in ("Relu", "Sigmoid", "Softmax", "HardSigmoid", "Abs", "Exp"):
        return True
    if node.op_type == "Clip":
        from converters.tflite.context import clip_bounds
        lo, _ = clip_bounds(node, ctx)
        return lo is not None and lo >= 0
    return False


def check_pool(node) -> Optional[str]:
    reason = need_spatial(node)
    if reason:
        return reason
    if any(d != 1 for d in (attr(node, "dilations", None) or [])):
        return "dilated pooling has no TFLite kernel"
    if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
        return "MaxPool's indices output has no TFLite equivalent"
    choice = _choice(node)
    if choice is None:
        return "padding depends on spatial dims unknown at conversion time"
    if (node.op_type == "AveragePool" and choice.explicit is not None
            and not attr(node, "count_include_pad", 0)):
        return "asymmetric average-pool padding that excludes padded cells is not representable"
    return None


@lowering("MaxPool", "AveragePool", emits={"MaxPool": ("MAX_POOL_2D", "PAD", "PADV2"),
                                           "AveragePool": ("AVERAGE_POOL_2D", "PAD")},
          check=check_pool)
def lower_pool(node, ctx) -> None:
    """1-D/2-D max/average pooling with SAME/VALID or an explicit pad."""
    win = window(node)
    kernel, strides = win.kernel, win.strides
    is_max = node.op_type == "MaxPool"
    x, stored = input_4d(ctx, node)
    choice = _choice(node)
    if not is_max and attr(node, "count_include_pad", 0) and choice.mode == "SAME":
        choice.explicit = choice.effective      # ONNX counts the pads, TFLite's SAME does not
        choice.mode = "VALID"
    if choice.explicit is not None:
        fill = _LOWEST if is_max and not non_negative(node.inputs[0], ctx) else None
        x = pad_input(ctx, x, node.name or node.outputs[0].name, stored, choice.explicit, fill)
    act, out_value = ctx.fuse_activation(node)
    out = output_4d(ctx, node, out_value)
    ctx.emit("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [x], [out],
             options("Pool2D", padding=padding(choice.mode), strideH=strides[0],
                     strideW=strides[1], filterHeight=kernel[0], filterWidth=kernel[1],
                     fusedActivationFunction=act))
    finish_4d(ctx, node, out_value, out)


def check_global(node) -> Optional[str]:
    return need_spatial(node)


@lowering("GlobalAveragePool", "GlobalMaxPool",
          emits={"GlobalAveragePool": ("MEAN",), "GlobalMaxPool": ("REDUCE_MAX",)},
          check=check_global)
def lower_global_pool(node, ctx) -> None:
    """Global pooling as a reduction over the stored spatial axes, keeping dims."""
    x = ctx.input(node, 0)
    out = ctx.output(node)
    spatial = list(range(1, len(ctx.input_perm(node, 0)) - 1))
    axes = ctx.const_tensor("hw_axes", np.array(spatial, dtype=np.int32))
    op = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    ctx.emit(op, [x, axes], [out], options("Reducer", keepDims=True))
