"""Softmax and normalizations: Softmax/LogSoftmax -> SOFTMAX/LOG_SOFTMAX on the stored last
axis; LayerNormalization, InstanceNormalization (rank >= 3), GroupNormalization (ONNX's,
and ``ai.edgert::GroupNorm``, which ``patterns.py`` folds from the Reshape ->
InstanceNormalization -> Reshape that PyTorch exports for GroupNorm) and a
BatchNormalization left unfolded -> MEAN/SUB/MUL/ADD/RSQRT chains (TFLite has no
normalization builtin; XNNPACK runs every op of the chain); LpNormalization(p=2) ->
L2_NORMALIZATION. Group normalization runs on the channel-last data: per-channel
means over the spatial axes, averaged within each group in a ``[N, G, C/G]`` view and
spread back to channels, so the large ops (SUB, MUL) broadcast per channel, which
XNNPACK does fastest (measured 1.5-1.7x faster than reducing a ``[N, S, G, C/G]`` view,
and than transposing to NCHW; docs/TFLITE.md).

The layout plan already stored the normalized axes last, so these lowerings never
transpose. Pre-opset-13 Softmax normalizes the flattened tail ``axis..``: it is
reshaped to one axis around the SOFTMAX.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from converters.layout.check import LastAxesRule
from converters.layout.graph import attr, is_const, rank_of, shape_of
from converters.layout.perm import permute_array
from converters.tflite.registry import lowering
from converters.tflite.schema import options
from edgert.op_registry import EDGERT_DOMAIN


@lowering("Softmax", "LogSoftmax", emits={"Softmax": ("SOFTMAX", "RESHAPE"),
                                          "LogSoftmax": ("LOG_SOFTMAX", "RESHAPE")})
def lower_softmax(node, ctx) -> None:
    """(Log)softmax over the stored last axis (several tail axes are flattened first)."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    tail = LastAxesRule.tail(node, len(perm))
    builtin = "SOFTMAX" if node.op_type == "Softmax" else "LOG_SOFTMAX"
    opts = options("Softmax", beta=1.0) if builtin == "SOFTMAX" else None
    if len(tail) == 1:
        ctx.emit(builtin, [x], [ctx.output(node)], opts)
        return
    stored = ctx.stored_shape(node.inputs[0], perm)
    k = len(tail)
    flat = stored[:-k] + [int(np.prod(stored[-k:]))]
    name = node.outputs[0].name
    a, b = ctx.tmp(f"{name}_flat", flat), ctx.tmp(f"{name}_soft", flat)
    ctx.reshape(x, a, flat)
    ctx.emit(builtin, [a], [b], opts)
    ctx.reshape(b, ctx.output(node), ctx.stored_shape(node.outputs[0]))


def _chain(ctx, name: str, shape, steps: List[tuple], x: int, out: int,
           bound: Optional[dict] = None) -> None:
    """Emit ``steps`` (builtin, [operands: 'x' | 'prev' | tensor index], options) in order;
    ``bound`` names steps whose result is an existing tensor (an output of the node)."""
    prev = x
    values = {"x": x}
    bound = bound or {}
    for k, (builtin, operands, opts, tag) in enumerate(steps):
        ins = [values.get(o, o) if isinstance(o, str) else o for o in operands]
        ins = [prev if o == "prev" else o for o in ins]
        dst = out if k == len(steps) - 1 else bound.get(tag) or ctx.tmp(
            f"{name}_{tag}", shape[tag] if isinstance(shape, dict) else shape)
        ctx.emit(builtin, ins, [dst], opts)
        values[tag] = dst
        prev = dst


def _normalize(ctx, name: str, x: int, stored, axes: List[int], eps: float,
               scale: Optional[np.ndarray], shift: Optional[np.ndarray], out: int,
               stats: Optional[dict] = None) -> None:
    """out = (x - mean) * rsqrt(var + eps) * scale + shift over stored ``axes`` of ``x``
    (stored shape ``stored``); a scale of ones or a shift of zeros is left out. ``stats``
    ({"mean": tensor, "inv_std": tensor}) writes those statistics into given tensors."""
    reduced = [1 if k in axes else d for k, d in enumerate(stored)]
    axes_t = ctx.const_tensor(f"{name}_axes", np.array(axes, np.int32))
    keep = options("Reducer", keepDims=True)
    eps_t = ctx.const_tensor(f"{name}_eps", np.array(eps, np.float32))
    steps = [("MEAN", ["x", axes_t], keep, "mean"),
             ("SUB", ["x", "mean"], options("Sub"), "centered"),
             ("MUL", ["centered", "centered"], options("Mul"), "sq"),
             ("MEAN", ["sq", axes_t], keep, "var"),
             ("ADD", ["var", eps_t], options("Add"), "var_eps"),
             ("RSQRT", ["var_eps"], None, "inv_std"),
             ("MUL", ["centered", "inv_std"], options("Mul"), "normed")]
    if scale is not None and not np.all(scale == 1):
        steps.append(("MUL", ["normed", ctx.weight(f"{name}_scale", scale, "other")[0]],
                      options("Mul"), "scaled"))
    if shift is not None and np.any(shift != 0):
        steps.append(("ADD", ["prev", ctx.weight(f"{name}_shift", shift, "other")[0]],
                      options("Add"), "shifted"))
    shapes = {tag: (reduced if tag in ("mean", "var", "var_eps", "inv_std") else stored)
              for _, _, _, tag in steps}
    _chain(ctx, name, shapes, steps, x, out, stats)


def check_layer_norm(node) -> Optional[str]:
    for i in (1, 2):
        if len(node.inputs) > i and node.inputs[i] is not None and not is_const(node.inputs[i]):
            return "scale and bias must be constant"
    return None


def _wanted(v) -> bool:
    return v is not None and bool(v.name) and (bool(v.uses()) or v.is_graph_output())


@lowering("LayerNormalization", emits=("MEAN", "SUB", "MUL", "ADD", "RSQRT"),
          check=check_layer_norm)
def lower_layer_norm(node, ctx) -> None:
    """LayerNormalization over the trailing axes, as an elementwise chain."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    r = len(perm)
    tail = LastAxesRule.tail(node, r)
    axes = list(range(r - len(tail), r))
    scale = ctx.const(node.inputs[1]) if len(node.inputs) > 1 else None
    shift = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
        else None
    aligned = lambda a: None if a is None else permute_array(  # noqa: E731
        a.astype(np.float32), perm)
    stats = {tag: ctx.output(node, i) for i, tag in ((1, "mean"), (2, "inv_std"))
             if len(node.outputs) > i and _wanted(node.outputs[i])}
    _normalize(ctx, node.outputs[0].name, x, ctx.stored_shape(node.inputs[0], perm), axes,
               float(attr(node, "epsilon", 1e-5)), aligned(scale), aligned(shift),
               ctx.output(node), stats)


def _per_channel(arr: np.ndarray, rank: int, perm) -> np.ndarray:
    """A per-channel vector [C] stored to broadcast over a tensor of ``rank`` in ``perm``."""
    shape = [1] * rank
    shape[1] = -1
    return permute_array(arr.astype(np.float32).reshape(shape), perm)


def check_instance_norm(node) -> Optional[str]:
    r = rank_of(node.inputs[0])
    if r is None or r < 3:
        return "instance normalization needs an input of rank 3 or more (N, C, spatial...)"
    if not (is_const(node.inputs[1]) and is_const(node.inputs[2])):
        return "scale and bias must be constant"
    return None


@lowering("InstanceNormalization", emits=("MEAN", "SUB", "MUL", "ADD", "RSQRT"),
          check=check_instance_norm)
def lower_instance_norm(node, ctx) -> None:
    """Per-sample, per-channel normalization over the stored spatial axes (channel-last)."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    r = len(perm)
    _normalize(ctx, node.outputs[0].name, x, ctx.stored_shape(node.inputs[0], perm),
               list(range(1, r - 1)), float(attr(node, "epsilon", 1e-5)),
               _per_channel(ctx.const(node.inputs[1]), r, perm),
               _per_channel(ctx.const(node.inputs[2]), r, perm), ctx.output(node))


def group_norm_groups(node) -> int:
    return int(attr(node, "num_groups", 1))


def check_group_norm(node) -> Optional[str]:
    x = shape_of(node.inputs[0])
    if x is None or len(x) < 3:
        return "group normalization needs an input of rank 3 or more (N, C, spatial...)"
    if any(d is None for d in x[1:]):
        return "channels and spatial dims must be known at conversion time"
    if not all(is_const(v) for v in node.inputs[1:3]):
        return "scale and bias must be constant"
    g = group_norm_groups(node)
    if g < 1 or x[1] % g:
        return f"{x[1]} channels do not split into num_groups={g}"
    if int(attr(node, "stash_type", 1)) != 1:
        return "only stash_type=1 (float32 statistics)"
    return None


def _per_channel_param(arr: np.ndarray, groups: int, channels: int) -> np.ndarray:
    """A per-group ([G]) or per-channel ([C]) scale/bias as a per-channel vector."""
    arr = np.asarray(arr, np.float32).reshape(-1)
    return np.repeat(arr, channels // groups) if arr.size == groups else arr


@lowering("GroupNormalization", emits=("MEAN", "RESHAPE", "SUB", "MUL", "ADD", "RSQRT"),
          opsets=(18, None), check=check_group_norm)
@lowering("GroupNorm", domain=EDGERT_DOMAIN,
          emits=("MEAN", "RESHAPE", "SUB", "MUL", "ADD", "RSQRT"), check=check_group_norm)
def lower_group_norm(node, ctx) -> None:
    """Group statistics from per-channel means, applied as per-channel operands (no TRANSPOSE)."""
    x = ctx.input(node, 0)
    stored = ctx.stored_shape(node.inputs[0], ctx.input_perm(node, 0))
    g, c, r = group_norm_groups(node), stored[-1], len(stored)
    name = node.outputs[0].name
    stat = [stored[0]] + [1] * (r - 2) + [c]                   # [N, 1.., C]
    spatial = ctx.const_tensor(f"{name}_spatial", np.arange(1, r - 1, dtype=np.int32))
    keep = options("Reducer", keepDims=True)

    def group_mean(v: int, tag: str) -> int:
        """Per-channel [N, 1.., C] -> its group's mean, per channel."""
        if g == c:
            return v
        grouped = ctx.view(v, [stored[0], g, c // g], f"{name}_{tag}_grouped")
        m = ctx.tmp(f"{name}_{tag}_gmean", [stored[0], g, 1])
        ctx.emit("MEAN", [grouped, ctx.const_tensor(f"{name}_last", np.array([2], np.int32))],
                 [m], keep)
        spread = ctx.tmp(f"{name}_{tag}_spread", [stored[0], g, c // g])
        ones = ctx.const_tensor(f"{name}_ones", np.ones((1, g, c // g), np.float32))
        ctx.emit("MUL", [m, ones], [spread], options("Mul"))
        return ctx.view(spread, stat, f"{name}_{tag}_per_channel")

    def channel_mean(v: int, tag: str) -> int:
        out = ctx.tmp(f"{name}_{tag}", stat)
        ctx.emit("MEAN", [v, spatial], [out], keep)
        return group_mean(out, tag)

    mean = channel_mean(x, "mean")
    centered = ctx.tmp(f"{name}_centered", stored)
    ctx.emit("SUB", [x, mean], [centered], options("Sub"))
    sq = ctx.tmp(f"{name}_sq", stored)
    ctx.emit("MUL", [centered, centered], [sq], options("Mul"))
    var = channel_mean(sq, "var")
    var_eps = ctx.tmp(f"{name}_var_eps", stat)
    ctx.emit("ADD", [var, ctx.const_tensor(f"{name}_eps", np.array(
        float(attr(node, "epsilon", 1e-5)), np.float32))], [var_eps], options("Add"))
    inv = ctx.tmp(f"{name}_inv_std", stat)
    ctx.emit("RSQRT", [var_eps], [inv])
    scale = _per_channel_param(ctx.const(node.inputs[1]), g, c)
    shift = _per_channel_param(ctx.const(node.inputs[2]), g, c)
    if not np.all(scale == 1):
        scaled = ctx.tmp(f"{name}_inv_std_scaled", stat)
        ctx.emit("MUL", [inv, ctx.weight(f"{name}_scale", scale, "other")[0]], [scaled],
                 options("Mul"))
        inv = scaled
    has_shift = bool(np.any(shift != 0))
    out = ctx.output(node)
    normed = ctx.tmp(f"{name}_normed", stored) if has_shift else out
    ctx.emit("MUL", [centered, inv], [normed], options("Mul"))
    if has_shift:
        ctx.emit("ADD", [normed, ctx.weight(f"{name}_shift", shift, "other")[0]], [out],
                 options("Add"))


def check_batch_norm(node) -> Optional[str]:
    if not all(is_const(v) for v in node.inputs[1:5]):
        return "scale, bias, mean and variance must be constant"
    if attr(node, "training_mode", 0):
        return "training_mode=1"
    return None


@lowering("BatchNormalization", emits=("MUL", "ADD"), check=check_batch_norm)
def lower_batch_norm(node, ctx) -> None:
    """An unfolded inference BatchNormalization as x * a + b with per-channel a, b."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    r = len(perm)
    gamma, beta, mean, var = (ctx.const(v).astype(np.float64) for v in node.inputs[1:5])
    a = gamma / np.sqrt(var + float(attr(node, "epsilon", 1e-5)))
    b = beta - mean * a
    name = node.outputs[0].name
    mid = ctx.tmp(f"{name}_scaled", ctx.stored_shape(node.inputs[0], perm))
    a_t, _ = ctx.weight(f"{name}_a", _per_channel(a, r, perm), "other")
    b_t, _ = ctx.weight(f"{name}_b", _per_channel(b, r, perm), "other")
    ctx.emit("MUL", [x, a_t], [mid], options("Mul"))
    act, out_value = ctx.fuse_activation(node)
    ctx.emit("ADD", [mid, b_t], [ctx.output(node, value=out_value)],
             options("Add", fusedActivationFunction=act))


def check_lp_norm(node) -> Optional[str]:
    if int(attr(node, "p", 2)) != 2:
        return "only p=2 (L2_NORMALIZATION)"
    return None


@lowering("LpNormalization", emits=("L2_NORMALIZATION",), check=check_lp_norm)
def lower_lp_norm(node, ctx) -> None:
    """L2 normalization over the stored last axis."""
    ctx.emit("L2_NORMALIZATION", [ctx.input(node, 0)], [ctx.output(node)])
