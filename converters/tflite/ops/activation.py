"""Activations that stay separate ops (when no producer could fuse them).

Relu/Relu6/Clip map to RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, or MAXIMUM/MINIMUM
for other bounds; HardSwish to HARD_SWISH; HardSigmoid(1/6, 1/2) — torch's — to
``ADD(x, 3) with fused RELU6, then MUL(1/6)``, other slopes to MUL/ADD/clamp;
erf-GELU (ONNX ``Gelu``, or the ``ai.edgert::Gelu`` our pattern pass folds from
Div/Erf/Add/Mul/Mul) to GELU. A bare ``Erf`` has no TFLite kernel.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr
from converters.tflite.context import clip_bounds
from converters.tflite.registry import lowering
from converters.tflite.schema import activation, options
from edgert.fused_activations import clip_activation
from edgert.op_registry import EDGERT_DOMAIN


@lowering("Relu", emits=("RELU",))
def lower_relu(node, ctx) -> None:
    """max(x, 0)."""
    x = ctx.input(node, 0)
    ctx.emit("RELU", [x], [ctx.output(node)])


def _clamp(ctx, node, x: int, lo: Optional[float], hi: Optional[float]) -> None:
    shape = ctx.stored_shape(node.outputs[0])
    if lo is not None:
        dst = ctx.output(node) if hi is None else ctx.tmp(f"{node.outputs[0].name}_lo", shape)
        ctx.emit("MAXIMUM", [x, ctx.const_tensor("clip_min", np.array(lo, np.float32))], [dst])
        x = dst
    if hi is not None:
        ctx.emit("MINIMUM", [x, ctx.const_tensor("clip_max", np.array(hi, np.float32))],
                 [ctx.output(node)])


def check_clip(node) -> Optional[str]:
    from converters.layout.graph import is_const
    for i in (1, 2):
        if len(node.inputs) > i and node.inputs[i] is not None and not is_const(node.inputs[i]):
            return "Clip bounds computed at run time are not supported"
    return None


@lowering("Clip", emits=("RELU6", "RELU", "RELU_N1_TO_1", "RELU_0_TO_1", "MAXIMUM", "MINIMUM"),
          check=check_clip)
def lower_clip(node, ctx) -> None:
    """Clip to a RELU variant when the bounds match one, else MAXIMUM/MINIMUM."""
    lo, hi = clip_bounds(node, ctx)
    x = ctx.input(node, 0)
    named = clip_activation(lo, hi)
    if named:
        ctx.emit(named, [x], [ctx.output(node)])
        return
    if lo is None and hi is None:
        ctx.bind(node.outputs[0], x, ctx.input_perm(node, 0))
        return
    _clamp(ctx, node, x, lo, hi)


_SIMPLE = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "HardSwish": "HARD_SWISH"}


@lowering(*_SIMPLE, emits={op: (b,) for op, b in _SIMPLE.items()})
def lower_simple(node, ctx) -> None:
    """One-to-one activations."""
    x = ctx.input(node, 0)
    ctx.emit(_SIMPLE[node.op_type], [x], [ctx.output(node)])


@lowering("LeakyRelu", emits=("LEAKY_RELU",))
def lower_leaky_relu(node, ctx) -> None:
    """x if x > 0 else alpha * x."""
    x = ctx.input(node, 0)
    ctx.emit("LEAKY_RELU", [x], [ctx.output(node)],
             options("LeakyRelu", alpha=float(attr(node, "alpha", 0.01))))


def check_prelu(node) -> Optional[str]:
    from converters.layout.graph import is_const
    if not is_const(node.inputs[1]):
        return "the slope is computed at run time; TFLite PRELU needs it constant"
    return None


@lowering("PRelu", emits=("PRELU",), check=check_prelu)
def lower_prelu(node, ctx) -> None:
    """PRELU with the slope broadcast to the stored layout."""
    x = ctx.input(node, 0)
    slope = ctx.tensor_of(node.inputs[1], ctx.perm(node.outputs[0]))
    ctx.emit("PRELU", [x, slope], [ctx.output(node)])


@lowering("Elu", emits=("ELU",), check=lambda n: None if float(attr(n, "alpha", 1.0)) == 1.0
          else "ELU with alpha != 1 has no TFLite kernel")
def lower_elu(node, ctx) -> None:
    """ELU (alpha 1)."""
    ctx.emit("ELU", [ctx.input(node, 0)], [ctx.output(node)])


@lowering("HardSigmoid", emits=("ADD", "MUL", "RELU_0_TO_1"))
def lower_hard_sigmoid(node, ctx) -> None:
    """clip(alpha * x + beta, 0, 1): torch's (alpha 1/6) as ADD(x, 3) with a fused RELU6 and
    MUL(1/6); others as MUL, ADD, RELU_0_TO_1 (after a conv: folded into its weights, see
    ``conv.py``)."""
    alpha, beta = hard_sigmoid_params(node)
    x = ctx.input(node, 0)
    shape = ctx.stored_shape(node.outputs[0])
    name = node.outputs[0].name
    if alpha > 0 and abs(1.0 / alpha - 6.0) < 1e-6:
        mid = ctx.tmp(f"{name}_relu6", shape)
        ctx.emit("ADD", [x, ctx.const_tensor("hs_offset", np.array(beta / alpha, np.float32))],
                 [mid], options("Add", fusedActivationFunction=activation("RELU6")))
        ctx.emit("MUL", [mid, ctx.const_tensor("hs_scale", np.array(alpha, np.float32))],
                 [ctx.output(node)], options("Mul"))
        return
    scaled = ctx.tmp(f"{name}_scaled", shape)
    ctx.emit("MUL", [x, ctx.const_tensor("hs_alpha", np.array(alpha, np.float32))], [scaled],
             options("Mul"))
    shifted = ctx.tmp(f"{name}_shifted", shape)
    ctx.emit("ADD", [scaled, ctx.const_tensor("hs_beta", np.array(beta, np.float32))], [shifted],
             options("Add"))
    ctx.emit("RELU_0_TO_1", [shifted], [ctx.output(node)])


def hard_sigmoid_params(node):
    return float(attr(node, "alpha", 0.2)), float(attr(node, "beta", 0.5))


def foldable_hard_sigmoid(node, ctx):
    """The HardSigmoid that alone reads ``node``'s output (which is no graph output), or
    None: its affine part can go into ``node``'s weights, leaving a RELU_0_TO_1."""
    from edgert.op_registry import is_default_domain

    v = node.outputs[0]
    if v.is_graph_output() or len(v.uses()) != 1:
        return None
    nxt = next(iter(v.uses())).node
    if nxt.op_type != "HardSigmoid" or not is_default_domain(nxt.domain) or id(nxt) in \
            ctx.consumed:
        return None
    return nxt


def check_gelu(node) -> Optional[str]:
    mode = attr(node, "approximate", "none")
    if mode not in ("none", "tanh"):
        return f"approximate={mode!r} is not a GELU variant TFLite has"
    return None


@lowering("Gelu", emits=("GELU",), opsets=(20, None), check=check_gelu)
def lower_gelu(node, ctx) -> None:
    """GELU, exact (erf) or tanh-approximated."""
    ctx.emit("GELU", [ctx.input(node, 0)], [ctx.output(node)],
             options("Gelu", approximate=attr(node, "approximate", "none") == "tanh"))


@lowering("Gelu", emits=("GELU",), domain=EDGERT_DOMAIN, check=check_gelu)
def lower_edgert_gelu(node, ctx) -> None:
    """GELU folded by our pattern pass from x * 0.5 * (1 + erf(x / sqrt 2))."""
    lower_gelu(node, ctx)
