"""Convolutions: Conv -> CONV_2D / DEPTHWISE_CONV_2D (grouped: CONV_2D v6), ConvTranspose ->
TRANSPOSE_CONV; 1-D (rank-3) ones as the 2-D op on a ``[N, 1, W, C]`` view (``spatial.py``).

TRANSPOSE_CONV has no groups, no dilation and only SAME/VALID: a grouped ConvTranspose
gets a block-diagonal dense weight, a dilated one zeros between its taps (both exact),
and ONNX's output window (pads, output_padding, output_shape, auto_pad; cells past the
full result hold the bias alone) is cut from a VALID result on the input zero-padded
until the window fits.

Weights are re-laid out once at conversion: ONNX OIHW -> OHWI for CONV_2D,
-> 1HW(C*M) for DEPTHWISE_CONV_2D; ConvTranspose's IOHW -> OHWI (1-D weights OIW get
H = 1). A following Relu/Relu6 becomes the op's fused activation. Asymmetric or
unusual pads become an explicit PAD before a VALID conv (see ``common.choose_padding``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr, shape_of
from converters.tflite.ops.activation import foldable_hard_sigmoid, hard_sigmoid_params
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


@lowering("Conv", emits=("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "RESHAPE", "RELU_0_TO_1"),
          check=check_conv)
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
    hsig = foldable_hard_sigmoid(node, ctx) if out_value is node.outputs[0] else None
    if hsig is not None:         # clip(a * conv + b, 0, 1): a and b go into the weights
        alpha, beta = hard_sigmoid_params(hsig)
        w, b = w * alpha, b.astype(np.float32) * alpha + beta
        ctx.consumed.add(id(hsig))
    name = node.name or out_value.name
    bias, _ = ctx.weight(f"{name}_bias", b.astype(np.float32), "bias")
    common = dict(padding=padding(choice.mode), strideH=strides[0], strideW=strides[1],
                  fusedActivationFunction=act, dilationHFactor=dilations[0],
                  dilationWFactor=dilations[1])
    final = output_4d(ctx, node, out_value if hsig is None else hsig.outputs[0])
    out = final
    if hsig is not None:         # the conv's result carries the HardSigmoid's name (and so
        out = ctx.tmp(f"{name}_affine", ctx.sg.shape(final))    # its int8 table entry)
        ctx.sg.tensors[out].name = ctx.sg.tensors[final].name
    if group > 1 and group == cin and in_per_group == 1:
        wt, facts = ctx.weight(f"{name}_weight", w.transpose(1, 2, 3, 0), "depthwise")
        ctx.emit("DEPTHWISE_CONV_2D", [x, wt, bias], [out],
                 options("DepthwiseConv2D", depthMultiplier=out_ch // cin, **common), **facts)
    else:
        wt, facts = ctx.weight(f"{name}_weight", w.transpose(0, 2, 3, 1), "conv")
        ctx.emit("CONV_2D", [x, wt, bias], [out], options("Conv2D", **common),
                 grouped=group > 1, **facts)
    if hsig is not None:
        ctx.emit("RELU_0_TO_1", [out], [final])
    finish_4d(ctx, node, out_value if hsig is None else hsig.outputs[0], final)


def tconv_geometry(node):
    """Per spatial dim (lifted to 2-D): ``(in, kernel_eff, stride, begin, out)``: the ONNX
    output is cells ``[begin, begin + out)`` of the full transposed convolution (length
    ``(in - 1) * stride + kernel_eff``, bias everywhere, also past its ends). ``begin``
    and ``out`` follow ONNX's reference: pads, output_padding, output_shape, auto_pad."""
    x, w = shape_of(node.inputs[0]), shape_of(node.inputs[1])
    n = len(x) - 2
    k = list(attr(node, "kernel_shape", None) or w[2:])
    strides = list(attr(node, "strides", None) or [1] * n)
    dil = list(attr(node, "dilations", None) or [1] * n)
    out_pad = list(attr(node, "output_padding", None) or [0] * n)
    pads = attr(node, "pads", None)
    auto = attr(node, "auto_pad", "NOTSET") or "NOTSET"
    out_shape = attr(node, "output_shape", None)
    dims = []
    for i in range(n):
        k_eff = (k[i] - 1) * dil[i] + 1
        full = (x[2 + i] - 1) * strides[i] + k_eff
        if pads is not None and auto in ("NOTSET", "VALID"):
            b, e = (0, 0) if auto == "VALID" else (pads[i], pads[i + n])
            out = out_shape[i] if out_shape else full + out_pad[i] - b - e
        else:
            out = out_shape[i] if out_shape else (
                x[2 + i] * strides[i] if auto in ("SAME_UPPER", "SAME_LOWER") else
                full + out_pad[i])
            total = full + out_pad[i] - out
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
        dims.append((x[2 + i], k_eff, strides[i], b, out))
    return [(1, 1, 1, 0, 1)] + dims if n == 1 else dims


def check_conv_transpose(node) -> Optional[str]:
    reason = first_reason(need_spatial(node), need_const(node, 1, "weight"),
                          need_const(node, 2, "bias"))
    if reason:
        return reason
    x = shape_of(node.inputs[0])
    if any(d is None for d in x[1:]):
        return "the channels and spatial dims must be known at conversion time"
    if x[0] is None:
        return "a dynamic batch needs a run-time output_shape, which is not supported"
    return None


def _tconv_weight(node, ctx) -> np.ndarray:
    """IOHW weight for one TRANSPOSE_CONV: groups as a block-diagonal dense weight (zeros
    outside the blocks: exact, at ``group`` times the MACs), dilation as zeros between the
    kernel taps."""
    w = _weight_4d(ctx.const(node.inputs[1]).astype(np.float32))      # [Cin, Cout/g, kh, kw]
    group = int(attr(node, "group", 1))
    if group > 1:
        cin, cog = w.shape[0], w.shape[1]
        dense = np.zeros((cin, cog * group) + w.shape[2:], np.float32)
        per = cin // group
        for g in range(group):
            dense[g * per:(g + 1) * per, g * cog:(g + 1) * cog] = w[g * per:(g + 1) * per]
        w = dense
    dil = list(attr(node, "dilations", None) or [])
    if any(d != 1 for d in dil):
        dh, dw = ([1] + dil) if len(dil) == 1 else dil
        kh, kw = w.shape[2:]
        spread = np.zeros(w.shape[:2] + ((kh - 1) * dh + 1, (kw - 1) * dw + 1), np.float32)
        spread[:, :, ::dh, ::dw] = w
        w = spread
    return w


@lowering("ConvTranspose", emits=("TRANSPOSE_CONV", "PAD", "STRIDED_SLICE", "RESHAPE"),
          check=check_conv_transpose)
def lower_conv_transpose(node, ctx) -> None:
    """Transposed convolution: SAME when ONNX's window is SAME's, else VALID on the input
    zero-padded so the full result covers ONNX's window, then cropped to it."""
    x, stored = input_4d(ctx, node)
    w = _tconv_weight(node, ctx)
    geo = tconv_geometry(node)
    n = stored[0]
    out_ch = w.shape[1]
    b = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
        else np.zeros(out_ch, np.float32)
    strides = [g[2] for g in geo]
    same = all(begin == max((i - 1) * s + k - i * s, 0) // 2 and out == i * s
               for i, k, s, begin, out in geo)
    name = node.name or node.outputs[0].name
    if same and any((i - 1) * s + k > i * s for i, k, s, _, _ in geo):
        mode, extra = "SAME", [[0, 0], [0, 0]]
    else:
        mode = "VALID"
        extra = []                    # input rows added before/after so the window fits
        for i, k, s, begin, out in geo:
            before = -(-max(-begin, 0) // s)
            after = -(-max(begin + out - ((i - 1) * s + k), 0) // s)
            extra.append([before, after])
    if any(p for pair in extra for p in pair):
        x = pad_input(ctx, x, name, stored, extra)
    hw = [g[0] + e[0] + e[1] for g, e in zip(geo, extra)]
    full = [h * s if mode == "SAME" else (h - 1) * s + g[1]
            for h, s, g in zip(hw, strides, geo)]
    starts = [0 if mode == "SAME" else g[3] + e[0] * g[2] for g, e in zip(geo, extra)]
    outs = [g[4] for g in geo]
    cropped = starts != [0, 0] or outs != full
    act, out_value = (0, node.outputs[0]) if cropped else ctx.fuse_activation(node)
    wt, _ = ctx.weight(f"{name}_weight", w.transpose(1, 2, 3, 0), "conv")
    bias, _ = ctx.weight(f"{name}_bias", b.astype(np.float32), "bias")
    shape_t = ctx.const_tensor(f"{name}_output_shape",
                               np.array([n] + full + [out_ch], dtype=np.int32))
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
    begin = np.array([0] + starts + [0], dtype=np.int32)
    end = begin + np.array([n] + outs + [out_ch], dtype=np.int32)
    ctx.emit("STRIDED_SLICE", [full_t, ctx.const_tensor(f"{name}_begin", begin),
                               ctx.const_tensor(f"{name}_end", end),
                               ctx.const_tensor(f"{name}_strides", np.ones(4, np.int32))],
             [out], options("StridedSlice"))
    finish_4d(ctx, node, out_value, out)
