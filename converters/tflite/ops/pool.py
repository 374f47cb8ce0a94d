"""Pooling: MaxPool / AveragePool -> MAX_POOL_2D / AVERAGE_POOL_2D (1-D pools on a
``[N, 1, W, C]`` view, see ``spatial.py``); global pools -> MEAN / REDUCE_MAX over the
stored spatial axes (XNNPACK runs both as global pooling).

Explicit pads for a max pool are filled with the lowest float (PADV2), so a
padded cell never wins, or with zeros (PAD) when the input is known non-negative
(after a Relu), which XNNPACK delegates and PADV2 it does not. An average pool
pads with zeros and counts what TFLite's VALID average counts (every cell of the
window); where ONNX counts fewer cells (``count_include_pad=0`` beside padding,
or the cells ceil mode adds past the padding, which ONNX never counts) the result
is multiplied by a constant ``kernel cells / counted cells`` per output position,
computed at conversion. SAME average pools with exactly SAME's pads stay SAME
(TFLite's SAME average excludes padded cells, like ONNX).

Ceil mode follows ONNX's output size (ceil, minus the last window when it would
start past the input and its leading padding) and becomes an explicit pad to the
length the windows read: XNNPACK rejects a pool whose SAME/VALID size differs from
the output's at load, so nothing is left for it to round. Dilated pools, 3-D
pools and LpPool are decomposed (``converters.passes.decompose_pool``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr
from converters.passes.decompose_pool import pool_geometry
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
    return choose_padding(win.in_hw, win.kernel, win.strides, win.dilations, win.pads)


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


def _explicit(node) -> bool:
    """Whether the pool needs the explicit-geometry form: ceil mode, or an average whose
    counted cells SAME/VALID cannot say."""
    if attr(node, "ceil_mode", 0):
        return True
    if node.op_type != "AveragePool":
        return False
    choice = _choice(node)
    return choice is not None and choice.explicit is not None and \
        not attr(node, "count_include_pad", 0)


def check_pool(node) -> Optional[str]:
    reason = need_spatial(node)
    if reason:
        return reason
    if any(d != 1 for d in (attr(node, "dilations", None) or [])):
        return "dilated pooling has no TFLite kernel"
    out1 = node.outputs[1] if len(node.outputs) > 1 else None
    if out1 is not None and (out1.uses() or out1.is_graph_output()):
        return "MaxPool's indices output has no TFLite equivalent"
    if _explicit(node):
        geo = pool_geometry(node)
        if isinstance(geo, str):
            return f"ceil mode or an asymmetric average pool needs static dims: {geo}"
        return None
    if _choice(node) is None:
        return "padding depends on spatial dims unknown at conversion time"
    return None


def _lift(geo):
    """Windows of a 1-D pool lifted to the 2-D kernel's (H = 1)."""
    from converters.passes.decompose_pool import AxisWindow

    return geo if len(geo) == 2 else [AxisWindow(1, 1, 1, 1, 0, 0, 1)] + geo


def _emit_pool(ctx, node, x, stored, mode: str, kernel, strides, explicit, scale) -> None:
    is_max = node.op_type == "MaxPool"
    name = node.name or node.outputs[0].name
    if explicit is not None:
        fill = _LOWEST if is_max and not non_negative(node.inputs[0], ctx) else None
        x = pad_input(ctx, x, name, stored, explicit, fill)
    act, out_value = ctx.fuse_activation(node) if scale is None else (0, node.outputs[0])
    out = output_4d(ctx, node, out_value)
    pooled = out if scale is None else ctx.tmp(f"{name}_window_mean", ctx.sg.tensors[out].shape)
    ctx.emit("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [x], [pooled],
             options("Pool2D", padding=padding(mode), strideH=strides[0],
                     strideW=strides[1], filterHeight=kernel[0], filterWidth=kernel[1],
                     fusedActivationFunction=act))
    if scale is not None:
        ctx.emit("MUL", [pooled, ctx.const_tensor(f"{name}_count_scale", scale)], [out],
                 options("Mul"))
    finish_4d(ctx, node, out_value, out)


@lowering("MaxPool", "AveragePool", emits={"MaxPool": ("MAX_POOL_2D", "PAD", "PADV2"),
                                           "AveragePool": ("AVERAGE_POOL_2D", "PAD", "MUL")},
          check=check_pool)
def lower_pool(node, ctx) -> None:
    """1-D/2-D max/average pooling with SAME/VALID or an explicit pad (ceil mode included)."""
    x, stored = input_4d(ctx, node)
    if _explicit(node):
        geo = _lift(pool_geometry(node))
        pads = [[w.before, max(w.read_after, 0)] for w in geo]
        scale = None
        if node.op_type == "AveragePool":
            include = bool(attr(node, "count_include_pad", 0))
            counts = np.multiply.outer(geo[0].counts(include), geo[1].counts(include))
            cells = geo[0].kernel * geo[1].kernel
            if np.any(counts != cells):
                scale = (cells / counts).astype(np.float32).reshape(
                    1, geo[0].n_out, geo[1].n_out, 1)
        explicit = pads if any(b or a for b, a in pads) else None
        _emit_pool(ctx, node, x, stored, "VALID", [w.kernel for w in geo],
                   [w.stride for w in geo], explicit, scale)
        return
    win = window(node)
    choice = _choice(node)
    if node.op_type == "AveragePool" and attr(node, "count_include_pad", 0) and \
            choice.mode == "SAME":
        choice.explicit = choice.effective      # ONNX counts the pads, TFLite's SAME does not
        choice.mode = "VALID"
    _emit_pool(ctx, node, x, stored, choice.mode, win.kernel, win.strides, choice.explicit,
               None)


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
    ctx.emit(op, [x, axes], [out],
             options("Reducer", keepDims=True))
