"""Convolutions: Conv -> CONV_2D / DEPTHWISE_CONV_2D (grouped: CONV_2D v6), ConvTranspose ->
TRANSPOSE_CONV.

Weights are re-laid out once at conversion: ONNX OIHW -> OHWI for CONV_2D,
-> 1HW(C*M) for DEPTHWISE_CONV_2D; ConvTranspose's IOHW -> OHWI. A following
Relu/Relu6 becomes the op's fused activation. Asymmetric or unusual pads become
an explicit PAD before a VALID conv (see ``common.choose_padding``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr, shape_of
from converters.tflite.ops.common import (
    choose_padding, first_reason, need_2d, need_const, onnx_pads, spatial_attrs)
from converters.tflite.registry import lowering
from converters.tflite.schema import options, padding


def check_conv(node) -> Optional[str]:
    reason = first_reason(need_2d(node), need_const(node, 1, "weight"),
                          need_const(node, 2, "bias"))
    if reason:
        return reason
    x = shape_of(node.inputs[0])
    kernel, strides, dilations = spatial_attrs(node, 2)
    pads = onnx_pads(node, x[2:], kernel, strides, dilations)
    if pads is None or choose_padding(x[2:], kernel, strides, dilations, pads) is None:
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


def _padded_input(ctx, node, kernel, strides, dilations, ceil_mode=False, value=None):
    x = ctx.input(node, 0)
    stored = ctx.stored_shape(node.inputs[0], ctx.input_perm(node, 0))
    hw = stored[1:3]
    pads = onnx_pads(node, hw, kernel, strides, dilations)
    choice = choose_padding(hw, kernel, strides, dilations, pads, ceil_mode)
    if choice.explicit is not None:
        x = pad_input(ctx, x, node.name or node.outputs[0].name, stored, choice.explicit, value)
    return x, choice


@lowering("Conv", emits=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD"), check=check_conv)
def lower_conv(node, ctx) -> None:
    """2-D convolution; depthwise when groups == input channels, grouped CONV_2D otherwise."""
    kernel, strides, dilations = spatial_attrs(node, 2)
    x, choice = _padded_input(ctx, node, kernel, strides, dilations)
    w = ctx.const(node.inputs[1]).astype(np.float32)
    out_ch, in_per_group = w.shape[0], w.shape[1]
    group = int(attr(node, "group", 1))
    cin = in_per_group * group
    b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
        else np.zeros(out_ch, np.float32)
    act, out_value = ctx.fuse_activation(node)
    out = ctx.output(node, value=out_value)
    name = node.name or out_value.name
    bias, _ = ctx.weight(f"{name}_bias", b.astype(np.float32), "bias")
    common = dict(padding=padding(choice.mode), strideH=strides[0], strideW=strides[1],
                  fusedActivationFunction=act, dilationHFactor=dilations[0],
                  dilationWFactor=dilations[1])
    if group > 1 and group == cin and in_per_group == 1:
        wt, facts = ctx.weight(f"{name}_weight", w.transpose(1, 2, 3, 0), "depthwise")
        ctx.emit("DEPTHWISE_CONV_2D", [x, wt, bias], [out],
                 options("DepthwiseConv2D", depthMultiplier=out_ch // cin, **common), **facts)
        return
    wt, facts = ctx.weight(f"{name}_weight", w.transpose(0, 2, 3, 1), "conv")
    ctx.emit("CONV_2D", [x, wt, bias], [out], options("Conv2D", **common),
             grouped=group > 1, **facts)


def check_conv_transpose(node) -> Optional[str]:
    reason = first_reason(need_2d(node), need_const(node, 1, "weight"),
                          need_const(node, 2, "bias"))
    if reason:
        return reason
    if int(attr(node, "group", 1)) != 1:
        return "grouped transposed convolution has no TFLite kernel"
    if any(d != 1 for d in (attr(node, "dilations", None) or [1, 1])):
        return "dilated transposed convolution has no TFLite kernel"
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
        return f"auto_pad={attr(node, 'auto_pad')} is not supported; export explicit pads"
    x, y = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    if y is None or any(d is None for d in y[1:]) or x[0] != y[0]:
        return "the output shape must be known at conversion time (except the batch)"
    if x[0] is None:
        return "a dynamic batch needs a run-time output_shape, which is not supported"
    k = shape_of(node.inputs[1])[2:]
    strides = list(attr(node, "strides", None) or [1, 1])
    pads = list(attr(node, "pads", None) or [0, 0, 0, 0])
    for d in range(2):
        if None in (x[2 + d], k[d]) or pads[d] + y[2 + d] > (x[2 + d] - 1) * strides[d] + k[d]:
            return "output_padding beyond the end padding is not supported"
    return None


@lowering("ConvTranspose", emits=("TRANSPOSE_CONV", "STRIDED_SLICE"), check=check_conv_transpose)
def lower_conv_transpose(node, ctx) -> None:
    """Transposed convolution: VALID, or SAME when the pads are SAME's, else VALID + crop."""
    x = ctx.input(node, 0)
    w = ctx.const(node.inputs[1]).astype(np.float32)          # [Cin, Cout, kh, kw]
    kernel = [w.shape[2], w.shape[3]]
    strides = list(attr(node, "strides", None) or [1, 1])
    pads = list(attr(node, "pads", None) or [0, 0, 0, 0])
    n, _, h, wd = shape_of(node.inputs[0])
    y = shape_of(node.outputs[0])
    out_ch, out_h, out_w = y[1], y[2], y[3]
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
        out = ctx.output(node, value=out_value)
        ctx.emit("TRANSPOSE_CONV", [shape_t, wt, x, bias], [out], opts)
        return
    full_t = ctx.tmp(f"{name}_full", [n] + full + [out_ch])
    ctx.emit("TRANSPOSE_CONV", [shape_t, wt, x, bias], [full_t], opts)
    out = ctx.output(node)
    begin = np.array([0, pads[0], pads[1], 0], dtype=np.int32)
    end = begin + np.array([n, out_h, out_w, out_ch], dtype=np.int32)
    ctx.emit("STRIDED_SLICE", [full_t, ctx.const_tensor(f"{name}_begin", begin),
                               ctx.const_tensor(f"{name}_end", end),
                               ctx.const_tensor(f"{name}_strides", np.ones(4, np.int32))],
             [out], options("StridedSlice"))
