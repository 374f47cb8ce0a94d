"""Attention pieces: Softmax (and LogSoftmax, Hardmax) and the fused ONNX
``Attention`` op (opset 23).

Exported attention is usually MatMul (Q K^T), a scale, Softmax, MatMul (. V):
the matrix products are counted by ``matmul.py``, the scale by
``elementwise.py``, the softmax here. Softmax per element: subtract the row max,
exp, add to the row sum, divide, plus one comparison for the max: 5 FLOPs
(transcendentals count as one). Hardmax: 1 comparison per element.

Attention (opset 23), Q (B, Hq, Sq, D) or (B, Sq, Hq*D), K (.., Skv, D),
V (.., Skv, Dv): MACs = B*Hq*Sq*Skv*(D + Dv); FLOPs = 2*MACs + 6 per score
(scale + softmax) + 1 per score with an attention mask.
"""
from __future__ import annotations

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import has_input, out_numel, shape_of
from converters.analysis.registry import register

SOFTMAX_FLOPS = 5


@register("Softmax", "LogSoftmax")
def softmax(node: NodeView) -> OpCost:
    return OpCost(flops=SOFTMAX_FLOPS * out_numel(node))


@register("Hardmax")
def hardmax(node: NodeView) -> OpCost:
    return OpCost(flops=out_numel(node))


@register("Attention")
def attention(node: NodeView) -> OpCost:
    q = shape_of(node.input(0), "Q")
    k = shape_of(node.input(1), "K")
    v = shape_of(node.input(2), "V")
    if len(q) == 4:
        b, hq, sq, d = q
        skv, dv = k[2], v[3]
    else:
        hq = int(node.attr("q_num_heads", 0) or 0)
        hkv = int(node.attr("kv_num_heads", 0) or 0)
        if not hq or not hkv:
            return OpCost(notes=["Attention with 3-D inputs and no head counts: "
                                 "counted as memory traffic only"])
        b, sq, d = q[0], q[1], q[2] // hq
        skv, dv = k[1], v[2] // hkv
    scores = b * hq * sq * skv
    macs = scores * (d + dv)
    flops = 2 * macs + scores * (1 + SOFTMAX_FLOPS) + (scores if has_input(node, 3) else 0)
    return OpCost(flops=flops, macs=macs)
