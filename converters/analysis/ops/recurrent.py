"""Recurrent layers: LSTM, GRU, RNN (ONNX layouts: X (seq, batch, input) or
batch-first with layout=1, W (dirs, gates*H, input), R (dirs, gates*H, H)).

MACs = dirs * seq * batch * gates * H * (input + H): every step multiplies the
input and the previous hidden state by all gate weights. FLOPs = 2 * MACs
+ 2 bias adds per gate unit (W and R biases) when B is given + the per-unit
gate arithmetic: LSTM 3 sigmoids (4 each), 2 tanh, c = f*c + i*g (3), h = o*tanh(c) (1)
= 18; GRU 2 sigmoids, 1 tanh, r * (R h) (1), h = (1 - z) * n + z * h (3) = 13;
RNN 1 tanh = 1.
"""
from __future__ import annotations

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import has_input, shape_of
from converters.analysis.registry import register

# op -> (gates, FLOPs of gate arithmetic per hidden unit per step)
RECURRENT = {"LSTM": (4, 18), "GRU": (3, 13), "RNN": (1, 1)}


@register(*RECURRENT)
def recurrent(node: NodeView) -> OpCost:
    gates, per_unit = RECURRENT[node.op_type]
    x = shape_of(node.input(0), "X")
    w = shape_of(node.input(1), "W")
    seq, batch = (x[1], x[0]) if int(node.attr("layout", 0)) else (x[0], x[1])
    dirs, hidden, inp = w[0], w[1] // gates, w[2]
    steps = dirs * seq * batch
    macs = steps * gates * hidden * (inp + hidden)
    flops = 2 * macs + steps * hidden * per_unit
    if has_input(node, 3):
        flops += steps * gates * hidden * 2
    return OpCost(flops=flops, macs=macs, bias_inputs=(3,) if has_input(node, 3) else ())
