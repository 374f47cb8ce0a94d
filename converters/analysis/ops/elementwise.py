"""Elementwise ops: FLOPs = numel(output) * the operations in the op's defining
formula, with a transcendental (exp, log, erf, tanh, sqrt, sin, ...) counting
as one operation. Broadcast inputs are read once at their own size.

The table below is the whole cost model; e.g. Sigmoid = 1 / (1 + exp(-x)) is
neg, exp, add, div = 4; HardSwish = x * clip(x/6 + 1/2, 0, 1) = 5.
Variadic Sum/Max/Min cost (inputs - 1) per element, Mean one more.
"""
from __future__ import annotations

from functools import partial

from converters.analysis.cost import OpCost
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import out_numel
from converters.analysis.registry import register

ELEMENTWISE_FLOPS = {
    # arithmetic and comparisons
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Mod": 1, "Pow": 1, "Neg": 1, "Abs": 1,
    "Sign": 1, "Reciprocal": 1, "Floor": 1, "Ceil": 1, "Round": 1,
    "Equal": 1, "Less": 1, "LessOrEqual": 1, "Greater": 1, "GreaterOrEqual": 1,
    "And": 1, "Or": 1, "Xor": 1, "Not": 1, "Where": 1, "IsNaN": 1, "IsInf": 1,
    "BitShift": 1, "BitwiseAnd": 1, "BitwiseOr": 1, "BitwiseXor": 1, "BitwiseNot": 1,
    # transcendentals (one operation each)
    "Sqrt": 1, "Exp": 1, "Log": 1, "Erf": 1, "Tanh": 1, "Sin": 1, "Cos": 1, "Tan": 1,
    "Asin": 1, "Acos": 1, "Atan": 1, "Sinh": 1, "Cosh": 1, "Asinh": 1, "Acosh": 1, "Atanh": 1,
    # activations, by their formula
    "Relu": 1,                 # max(x, 0)
    "Clip": 2,                 # min(max(x, lo), hi)
    "LeakyRelu": 2,            # x < 0 ? a*x : x   (compare, multiply)
    "PRelu": 2,
    "ThresholdedRelu": 1,
    "Sigmoid": 4,              # 1 / (1 + exp(-x))
    "HardSigmoid": 4,          # max(0, min(1, a*x + b))
    "HardSwish": 5,            # x * HardSigmoid(x)
    "Elu": 4,                  # x < 0 ? a*(exp(x) - 1) : x
    "Selu": 5,
    "Celu": 5,
    "Softplus": 3,             # log(exp(x) + 1)
    "Softsign": 3,             # x / (1 + |x|)
    "Mish": 5,                 # x * tanh(softplus(x))
    "Gelu": 5,                 # 0.5 * x * (1 + erf(x / sqrt(2)))
    "Shrink": 3,
}


def _elementwise(node: NodeView, per_element: int) -> OpCost:
    return OpCost(flops=per_element * out_numel(node))


for _op, _cost in ELEMENTWISE_FLOPS.items():
    register(_op)(partial(_elementwise, per_element=_cost))


@register("Sum", "Max", "Min")
def variadic(node: NodeView) -> OpCost:
    n_in = len([t for t in node.inputs if t is not None])
    return OpCost(flops=max(n_in - 1, 0) * out_numel(node))


@register("Mean")
def mean(node: NodeView) -> OpCost:
    n_in = len([t for t in node.inputs if t is not None])
    return OpCost(flops=n_in * out_numel(node))
