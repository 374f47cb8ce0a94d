"""Normalizations written as reductions and elementwise ops: RMSNormalization (opset 23),
MeanVarianceNormalization, LpNormalization (p = 1, and p = 2 where a target lacks it)
and LRN (the channel window summed by a 1x1 convolution with a 0/1 band matrix).

The statistics are the ONNX function bodies' (float32, ``stash_type`` 1), except that
the variance is the mean of squared deviations rather than E[x^2] - E[x]^2, which
rounding can make negative.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.graph_edit import Emitter


def _rank(v: ir.Value) -> Optional[int]:
    return None if v.shape is None else len(v.shape)


def _need_rank(node: ir.Node) -> Optional[str]:
    return "the input rank is unknown" if _rank(node.inputs[0]) is None else None


def _refuse_rms(node: ir.Node) -> Optional[str]:
    if node.attributes.get_int("stash_type", 1) != 1:
        return "only stash_type=1 (float32 statistics)"
    return _need_rank(node)


@decomposition("RMSNormalization", "x / sqrt(mean(x^2 over axis..) + eps) * scale",
               refuse=_refuse_rms)
def _rms_norm(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, scale = node.inputs[0], node.inputs[1]
    r = _rank(x)
    axis = node.attributes.get_int("axis", -1) % r
    eps = node.attributes.get_float("epsilon", 1e-5)
    ms = e.reduce("ReduceMean", e.op("Mul", [x, x]), list(range(axis, r)))
    rms = e.op("Sqrt", [e.op("Add", [ms, e.like(eps, x)])])
    return [e.op("Mul", [e.op("Div", [x, rms]), scale])]


@decomposition("MeanVarianceNormalization", "(x - mean) / (sqrt(mean((x - mean)^2)) + 1e-9)",
               refuse=_need_rank)
def _mvn(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    axes = node.attributes.get_ints("axes", [0, 2, 3])
    axes = sorted(a % _rank(x) for a in axes)
    centered = e.op("Sub", [x, e.reduce("ReduceMean", x, axes)])
    var = e.reduce("ReduceMean", e.op("Mul", [centered, centered]), axes)
    std = e.op("Add", [e.op("Sqrt", [var]), e.like(1e-9, x)])
    return [e.op("Div", [centered, std])]


@decomposition("LpNormalization", "x / sum(|x|) (p=1), x / sqrt(sum(x^2)) (p=2) over axis",
               refuse=lambda n: _need_rank(n) or (
                   None if n.attributes.get_int("p", 2) in (1, 2) else "only p = 1 or 2"))
def _lp_norm(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    axis = node.attributes.get_int("axis", -1) % _rank(x)
    if node.attributes.get_int("p", 2) == 1:
        norm = e.reduce("ReduceSum", e.op("Abs", [x]), [axis])
    else:
        norm = e.op("Sqrt", [e.reduce("ReduceSum", e.op("Mul", [x, x]), [axis])])
    return [e.op("Div", [x, norm])]


def _refuse_lrn(node: ir.Node) -> Optional[str]:
    x = node.inputs[0]
    if x.shape is None or len(x.shape) < 3:
        return "needs an input of rank 3 or more (N, C, spatial...)"
    if not isinstance(x.shape[1], int):
        return "the channel count must be known at conversion time"
    if len(x.shape) > 4:
        return "only 1-D and 2-D (rank 3 or 4) inputs"
    return None


@decomposition("LRN", "x / (bias + alpha / size * window_sum(x^2))^beta, the channel window "
               "summed by a 1x1 Conv", refuse=_refuse_lrn)
def _lrn(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    a = node.attributes
    size = a.get_int("size")
    alpha, beta, bias = a.get_float("alpha", 1e-4), a.get_float("beta", 0.75), \
        a.get_float("bias", 1.0)
    c = x.shape[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    band = np.zeros((c, c) + (1,) * (len(x.shape) - 2), np.float32)
    for o in range(c):
        band[o, max(0, o - lo):min(c - 1, o + hi) + 1] = 1.0
    sq_sum = e.op("Conv", [e.op("Mul", [x, x]), e.const(band)])
    base = e.op("Add", [e.op("Mul", [sq_sum, e.like(alpha / size, x)]), e.like(bias, x)])
    return [e.op("Div", [x, e.op("Pow", [base, e.like(beta, x)])])]
