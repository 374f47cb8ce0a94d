"""Convolutions: Conv (plain, grouped, depthwise), ConvTranspose, and the
quantized forms ConvInteger and QLinearConv.

Conv:  MACs = N * M * prod(out_spatial) * (C/group) * prod(kernel), with the
weight (M, C/group, k...) and output (N, M, out...): grouped and depthwise
(group = C) convolutions are the same formula. Padded positions count, as in
every published FLOP figure. FLOPs = 2 * MACs + N * M * prod(out_spatial) with a bias.

ConvTranspose scatters each input element into (M/group) * prod(kernel) outputs:
MACs = N * C * prod(in_spatial) * (M/group) * prod(kernel) (the weight is
(C, M/group, k...)), the convention of fvcore and the PyTorch profiler.
"""
from __future__ import annotations

from converters.analysis.cost import OpCost, prod
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import has_input, shape_of
from converters.analysis.registry import register

# op -> (data input, weight input, bias input or None)
_CONV_INPUTS = {"Conv": (0, 1, 2), "ConvInteger": (0, 1, None), "QLinearConv": (0, 3, 8)}


@register("Conv", "ConvInteger", "QLinearConv")
def conv(node: NodeView) -> OpCost:
    _, w_i, b_i = _CONV_INPUTS[node.op_type]
    w = shape_of(node.input(w_i), "weight")
    y = shape_of(node.output(0), "output")
    outputs = prod(y)                          # N * M * prod(out_spatial)
    macs = outputs * w[1] * prod(w[2:])        # (C/group) * prod(kernel) per output
    biased = b_i is not None and has_input(node, b_i)
    return OpCost(flops=2 * macs + (outputs if biased else 0), macs=macs,
                  bias_inputs=(b_i,) if biased else ())


@register("ConvTranspose")
def conv_transpose(node: NodeView) -> OpCost:
    x = shape_of(node.input(0), "input")
    w = shape_of(node.input(1), "weight")
    y = shape_of(node.output(0), "output")
    macs = prod(x) * w[1] * prod(w[2:])        # N*C*prod(in_spatial) * (M/group) * prod(kernel)
    biased = has_input(node, 2)
    return OpCost(flops=2 * macs + (prod(y) if biased else 0), macs=macs,
                  bias_inputs=(2,) if biased else ())
