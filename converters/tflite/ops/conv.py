"""Convolutions: Conv -> CONV_2D / DEPTHWISE_CONV_2D (grouped: CONV_2D v6), ConvTranspose ->
TRANSPOSE_CONV; 1-D (rank-3) ones as the 2-D op on a ``[N, 1, W, C]`` view (``spatial.py``).

Weights are re-laid out once at conversion: ONNX OIHW -> OHWI for CONV_2D,
-> 1HW(C*M) for DEPTHWISE_CONV_2D; ConvTranspose's IOHW -> OHWI (1-D weights OIW get
H = 1). A following Relu/Relu6 becomes the op's fused activation. Asymmetric or
unusual pads become an explicit PAD before a VALID conv (see ``common.choose_padding``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr, shape_of
from converters.tflite.ops.common import choose_padding, first_reason, need_const
from converters.tflite.ops.spatial import (
    finish_4d, input_4d, need_spatial, output_4d, window)
from converters.tflite.registry import lowering
from converters.tflite.schema import options, padding


def check_conv(node) -> Optional[str]:
    reason = first_reason(need_spatial(node), need_const(node, 1, "weight"),
                          need_const(node, 2, "bias"))
    if reason:
        return reason
    win = window(node)
    if win.pads is None or choose_padding(win.in_hw, win.kernel, win.strides, win.dilations,
                                          win.pads) is None:
        return "padding depends on spatial dims unknown at conversion time"
    return None


def pad_input(ctx, x: int, name: str, stored_shape, pairs, value: Optional[float] = None) -> int:
    """PAD (or PADV2 with ``value``) on the H, W dims of an NHWC tensor."""
    full = np.array([[0, 0]] + [list(p) for p in pairs] + [[0, 0]], dtype=np.int32)
    shape = list(stored_shape)
    for d, (b, a) in enumerate(pairs, start=1):
        shape[d] = None if shape[d] is None else shape[d] + b + a
    out = ctx.tmp(f"{name}_padded", shape)
    pads = ctx.const_tensor(f"{name}_pads", full)
    if value is None:
        ctx.emit("PAD", [x, pads], [out])
    else:
        fill = ctx.const_tensor(f"{name}_pad_value", np.array(value, dtype=np.float32))
        ctx.emit("PADV2", [x, pads, fill], [out])
    return out


def _padded_input(ctx, node, win):
    """The input as a rank-4 NHWC tensor, padded explicitly when SAME/VALID cannot say it."""
    x, stored = input_4d(ctx, node)
    choice = choose_padding(stored[1:3], win.kernel, win.strides, win.dilations, win.pads)
    if choice.explicit is not None:
        x = pad_input(ctx, x, node.name or node.outputs[0].name, stored, choice.explicit)
    return x, choice


def _weight_4d(w: np.ndarray) -> np.ndarray:
    """A 1-D conv weight ``[O, I, k]`` as ``[O, I, 1, k]``; 2-D weights as they are."""
    return w[:, :, None, :] if w.ndim == 3 else w


@lowering("Conv", emits=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "RESHAPE"), check=check_conv)
def lower_conv(node, ctx) -> None:
    """1-D/2-D convolution; depthwise when groups == input channels, else (grouped) CONV_2D."""
    win = window(node)
    strides, dilations = win.strides, win.dilations
    x, choice = _padded_input(ctx, node, win)
    w = _weight_4d(ctx.const(node.inputs[1]).astype(np.float32))
    out_ch, in_per_group = w.shape[0], w.shape[1]
    group = int(attr(node, "group", 1))
    cin = in_per_group * group
    b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
        else np.zeros(out_ch, np.float32)
    act, out_value = ctx.fuse_activation(node)
    name = node.name or out_value.name
    bias, _ = ctx.weight(f"{name}_bias", b.astype(np.float32), "bias")
    common = dict(padding=padding(choice.mode), strideH=strides[0], strideW=strides[1],
                  fusedActivationFunction=act, dilationHFactor=dilations[0],
                  dilationWFactor=dilations[1])
    if group > 1 and group == cin and in_per_group == 1:
        wt, facts = ctx.weight(f"{name}_weight", w.transpose(1, 2, 3, 0), "depthwise")
        out = output_4d(ctx, node, out_value)
        ctx.emit("DEPTHWISE_CONV_2D", [x, wt, bias], [out],
                 options("DepthwiseConv2D", depthMultiplier=out_ch // cin, **common), **facts)
    else:
        wt, facts = ctx.weight(f"{name}_weight", w.transpose(0, 2, 3, 1), "conv")
        out = output_4d(ctx, node, out_value)
        ctx.emit("CONV_2D", [x, wt, bias], [out], options("Conv2D", **common),
                 grouped=group > 1, **facts)
    finish_4d(ctx, node, out_value, out)


def _tconv_geometry(node):
    """(batch, input hw, output hw, kernel, strides, pads [t, l, b, r]) lifted to 2-D."""
    x, y = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    n = len(x) - 2
    k = list(shape_of(node.inputs[1])[2:])
    strides = list(attr(node, "strides", None) or [1] * n)
    pads = list(attr(node, "pads", None) or [0] * (2 * n))
    if n == 1:
        return x[0], [1, x[2]], [1, y[2]], [1] + k, [1] + strides, [0, pads[0], 0, pads[1]]
    return x[0], list(x[2:]), list(y[2:]), k, strides, pads


def check_conv_transpose(node) -> Optional[str]:
    reason = first_reason(need_spatial(node), need_const(node, 1, "weight"),
                          need_const(node, 2, "bias"))
    if reason:
        return reason
    if int(attr(node, "group", 1)) != 1:
        return "grouped transposed convolution has no TFLite kernel"
    if any(d != 1 for d in (attr(node, "dilations", None) or [])):
        return "dilated transposed convolution has no TFLite kernel"
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
        return f"auto_pad={attr(node, 'auto_pad')} is not supported; export explicit pads"
    x, y = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    if y is None or any(d is None for d in y[1:]) or x[0] != y[0]:
        return "the output shape must be known at conversion time (except the batch)"
    if x[0] is None:
        return "a dynamic batch needs a run-time output_shape, which is not supported"
    _, hw, out_hw, k, strides, pads = _tconv_geometry(node)
    for d in range(2):
        if None in (hw[d], k[d]) or pads[d] + out_hw[d] > (hw[d] - 1) * strides[d] + k[d]:
            return "output_padding beyond the end padding is not supported"
    return None


@lowering("ConvTranspose", emits=("TRANSPOSE_CONV", "STRIDED_SLICE", "RESHAPE"),
          check=check_conv_transpose)
def lower_conv_transpose(node, ctx) -> None:
    """Transposed convolution: VALID, or SAME when the pads are SAME's, else VALID + crop."""
    x, _ = input_4d(ctx, node)
    w = _weight_4d(ctx.const(node.inputs[1]).astype(np.float32))     # [Cin, Cout, kh, kw]
    n, (h, wd), (out_h, out_w), kernel, strides, pads = _tconv_geometry(node)
    out_ch = w.shape[1]
    full = [(h - 1) * strides[0] + kernel[0], (wd - 1) * strides[1] + kernel[1]]
    same = [h * strides[0], wd * strides[1]]
    same_pads = [max(full[d] - same[d], 0) for d in range(2)]
    is_same = [out_h, out_w] == same and all(
        pads[d] == same_pads[d] // 2 for d in range(2))
    mode = "SAME" if is_same and any(same_pads) else "VALID"
    tconv_hw = same if mode == "SAME" else full
    b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
        else np.zeros(out_ch, np.float32)
    cropped = mode == "VALID" and [out_h, out_w] != full
    act, out_value = (0, node.outputs[0]) if cropped else ctx.fuse_activation(node)
    name = node.name or out_value.name
    wt, _ = ctx.weight(f"{name}_weight", w.transpose(1, 2, 3, 0), "conv")
    bias, _ = ctx.weight(f"{name}_bias", b.astype(np.float32), "bias")
    shape_t = ctx.const_tensor(f"{name}_output_shape",
                               np.array([n] + tconv_hw + [out_ch], dtype=np.int32))
    opts = options("TransposeConv", padding=padding(mode), strideH=strides[0],
                   strideW=strides[1], fusedActivationFunction=act)
    if not cropped:
        out = output_4d(ctx, node, out_value)
        ctx.emit("TRANSPOSE_CONV", [shape_t, wt, x, bias], [out], opts)
        finish_4d(ctx, node, out_value, out)
        return
    full_t = ctx.tmp(f"{name}_full", [n] + full + [out_ch])
    ctx.emit("TRANSPOSE_CONV", [shape_t, wt, x, bias], [full_t], opts)
    out = output_4d(ctx, node, out_value)
    begin = np.array([0, pads[0], pads[1], 0], dtype=np.int32)
    end = begin + np.array([n, out_h, out_w, out_ch], dtype=np.int32)
    ctx.emit("STRIDED_SLICE", [full_t, ctx.const_tensor(f"{name}_begin", begin),
                               ctx.const_tensor(f"{name}_end", end),
                               ctx.const_tensor(f"{name}_strides", np.ones(4, np.int32))],
             [out], options("StridedSlice"))
    finish_4d(ctx, node, out_value, out)
