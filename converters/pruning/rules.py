"""Per-op rules of the channel analysis: how each op moves, makes or consumes channels.

One function per op family, registered for its op types (duplicates are an
error). A rule reads its inputs' channel ids from the ChannelGraph, sets its
outputs' ids and "zero once masked" flags, and records the initializer slices
its op needs when channels go. An op with no rule freezes every channel it
touches, so an unknown op can make pruning do less, never something wrong.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

from converters.layout.graph import attr, const_of, shape_of
from converters.pruning.graph import ChannelGraph, Producer, Slice

RULES: Dict[str, Callable] = {}

# f(0) == 0: a zero channel stays zero
ZERO_PRESERVING = {"Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Gelu", "HardSwish", "Tanh", "Neg",
                   "Abs", "Identity", "Dropout", "Sign", "Softsign", "Sin", "Sqrt", "Floor",
                   "Ceil", "Round", "Erf", "Mish", "Cast", "ThresholdedRelu", "Shrink", "Clip"}
ZERO_LOSING = {"Sigmoid", "HardSigmoid", "Exp", "Cos", "Softplus", "Reciprocal", "Log"}
POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
         "GlobalLpPool"}
REDUCES = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu"}


def rule(*op_types: str):
    def deco(fn: Callable) -> Callable:
        for op in op_types:
            if op in RULES:
                raise ValueError(f"channel rule for {op} registered twice")
            RULES[op] = fn
        return fn
    return deco


def _name(node) -> str:
    return node.name or (node.outputs[0].name if node.outputs else node.op_type)


def _shared(value) -> bool:
    return len(list(value.uses())) > 1


def _init(value) -> bool:
    return value is not None and value.const_value is not None


def freeze_all(node, cg: ChannelGraph, reason: Optional[str] = None) -> None:
    why = reason or f"{node.op_type} node {_name(node)!r} is outside the channel analysis"
    for v in node.inputs:
        cg.freeze(v, why)


def _new_output(cg: ChannelGraph, out, n: int) -> np.ndarray:
    ids = cg.new_ids(n)
    cg.set(out, ids, np.ones(n, bool))
    return ids


@rule("Conv")
def conv(node, cg: ChannelGraph) -> None:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if not _init(w) or (b is not None and not _init(b)) or _shared(w):
        freeze_all(node, cg, f"Conv {_name(node)!r} has a non-constant or shared weight")
        return
    wa = w.const_value.numpy()
    group = int(attr(node, "group", 1))
    c_out, c_in = wa.shape[0], wa.shape[1] * group
    out = node.outputs[0]
    if group == 1:
        if cg.tracked(x):
            cg.block_nonzero(x, f"Conv {_name(node)!r}")
            cg.slices.append(Slice(w, 1, x, False, _name(node), "weight in"))
        _new_output(cg, out, c_out)
        cg.producers.append(Producer(w, 0, out, _name(node), "Conv"))
        cg.slices.append(Slice(w, 0, out, True, _name(node), "weight out"))
        if b is not None:
            cg.slices.append(Slice(b, 0, out, True, _name(node), "bias"))
        return
    if group == c_in == c_out and wa.shape[1] == 1 and cg.tracked(x):
        cg.set(out, cg.ids[x], np.ones(c_out, bool))      # depthwise: same channels
        cg.slices.append(Slice(w, 0, out, True, _name(node), "depthwise weight"))
        if b is not None:
            cg.slices.append(Slice(b, 0, out, True, _name(node), "bias"))
        cg.fixups.append(_group_fixup(node, out, cg))
        return
    reason = f"grouped Conv {_name(node)!r} (group {group}) ties channels in groups"
    cg.freeze(x, reason)
    _new_output(cg, out, c_out)
    cg.freeze(out, reason)


def _group_fixup(node, out, cg: ChannelGraph):
    def fix(keep_of) -> None:
        import onnx_ir as ir

        node.attributes["group"] = ir.AttrInt64("group", int(len(keep_of(out))))
    return fix


@rule("ConvTranspose")
def conv_transpose(node, cg: ChannelGraph) -> None:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if int(attr(node, "group", 1)) != 1 or not _init(w) or _shared(w) or \
            (b is not None and not _init(b)):
        freeze_all(node, cg, f"ConvTranspose {_name(node)!r} is grouped or has a "
                             "non-constant weight")
        if node.outputs[0] is not None and w.shape is not None:
            cg.freeze(node.outputs[0], "output of an unhandled ConvTranspose")
        return
    out = node.outputs[0]
    if cg.tracked(x):
        cg.block_nonzero(x, f"ConvTranspose {_name(node)!r}")
        cg.slices.append(Slice(w, 0, x, False, _name(node), "weight in"))
    _new_output(cg, out, w.const_value.numpy().shape[1])
    cg.producers.append(Producer(w, 1, out, _name(node), "ConvTranspose"))
    cg.slices.append(Slice(w, 1, out, True, _name(node), "weight out"))
    if b is not None:
        cg.slices.append(Slice(b, 0, out, True, _name(node), "bias"))


@rule("BatchNormalization", "InstanceNormalization")
def batchnorm(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    params = [v for v in node.inputs[1:] if v is not None]
    if not cg.tracked(x) or not all(_init(v) and not _shared(v) for v in params) or \
            len(node.outputs) > 1 and any(o is not None and list(o.uses()) for o in node.outputs[1:]):
        freeze_all(node, cg)
        return
    cg.set(out, cg.ids[x], np.ones(len(cg.ids[x]), bool))   # masked scale and bias: output 0
    roles = ("scale", "bias", "mean", "var")
    for k, v in enumerate(params):
        cg.slices.append(Slice(v, 0, out, k < 2, _name(node), f"norm {roles[k]}"))
    if node.op_type == "BatchNormalization" and len(params) == 4:
        gamma, var = params[0].const_value.numpy(), params[3].const_value.numpy()
        eps = float(attr(node, "epsilon", 1e-5))
        for i, s in zip(cg.ids[x].tolist(), (np.abs(gamma) / np.sqrt(var + eps)).tolist()):
            cg.bn_scale[i] = cg.bn_scale.get(i, 1.0) * float(s)


@rule(*sorted(ZERO_PRESERVING | ZERO_LOSING))
def unary(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    keeps_zero = node.op_type in ZERO_PRESERVING
    if node.op_type == "Clip":
        lo, hi = _clip_bounds(node)
        keeps_zero = (lo is None or lo <= 0.0) and (hi is None or hi >= 0.0)
    cg.set(out, cg.ids[x], cg.zero[x] & keeps_zero)


def _clip_bounds(node):
    lo, hi = attr(node, "min", None), attr(node, "max", None)
    vals = [const_of(v) if v is not None else None for v in list(node.inputs[1:3])]
    if len(vals) > 0 and vals[0] is not None:
        lo = float(vals[0])
    if len(vals) > 1 and vals[1] is not None:
        hi = float(vals[1])
    return lo, hi


def _channel_dim(shape: List[Optional[int]], rank: int) -> Optional[int]:
    """Channel axis (1 of the output's ``rank``) in a right-aligned broadcast operand."""
    k = 1 - (rank - len(shape))
    return k if 0 <= k < len(shape) else None


@rule(*sorted(ELEMENTWISE))
def elementwise(node, cg: ChannelGraph) -> None:
    out = node.outputs[0]
    oshape = shape_of(out)
    if oshape is None or len(oshape) < 2 or oshape[1] is None:
        freeze_all(node, cg)
        return
    c, rank = oshape[1], len(oshape)
    tracked, consts = [], []
    for k, v in enumerate(node.inputs):
        s = shape_of(v)
        ax = None if s is None else _channel_dim(s, rank)
        size = None if ax is None else s[ax]
        if cg.tracked(v) and size == c:
            tracked.append(v)
        elif _init(v) and size == c and c > 1:
            consts.append((k, v, ax))
        elif size not in (None, 1) or (s is None and not _init(v)):
            freeze_all(node, cg, f"{node.op_type} {_name(node)!r} mixes in a tensor with "
                                 "channels the analysis does not track")
            return
    if not tracked:
        return
    for v in tracked[1:]:
        cg.union(cg.ids[tracked[0]], cg.ids[v])
    zeros = [cg.zero[v] for v in tracked]
    if node.op_type in ("Mul",):
        zero = np.logical_or.reduce(zeros) | bool(consts)
    elif node.op_type in ("Div",):
        zero = cg.zero[node.inputs[0]] if node.inputs[0] in tracked else np.zeros(c, bool)
    elif node.op_type == "PRelu":
        zero = zeros[0]
    else:
        zero = np.logical_and.reduce(zeros)
    cg.set(out, cg.ids[tracked[0]], zero)
    for k, v, ax in consts:
        if _shared(v):
            freeze_all(node, cg, f"per-channel constant {v.name!r} is shared")
            return
        masked = not (node.op_type == "Div" and k == 1) and node.op_type != "PRelu"
        cg.slices.append(Slice(v, ax, out, masked, _name(node), "per-channel constant"))


@rule(*sorted(POOLS | {"Resize", "Upsample", "Pad"}))
def spatial(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    zero = cg.zero[x]
    if node.op_type == "Pad":
        pads = const_of(node.inputs[1]) if len(node.inputs) > 1 else attr(node, "pads", None)
        rank = len(shape_of(x) or [])
        if pads is None or not rank or int(pads[1]) or int(pads[1 + rank]):
            freeze_all(node, cg, f"Pad {_name(node)!r} pads channels or has unknown pads")
            return
        value = const_of(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
            else np.zeros(())
        if attr(node, "mode", "constant") in ("constant", b"constant") and float(value) != 0:
            zero = np.zeros_like(zero)
    if node.op_type in ("Resize", "Upsample") and len(node.inputs) > 3 and \
            node.inputs[3] is not None:
        cg.fixups.append(_sizes_fixup(node, out))
    cg.set(out, cg.ids[x], zero)


def _sizes_fixup(node, out):
    def fix(keep_of) -> None:
        import onnx_ir as ir

        sizes = np.array(const_of(node.inputs[3]), dtype=np.int64)
        sizes[1] = len(keep_of(out))
        node.replace_input_with(3, ir.Value(name=f"{node.inputs[3].name}_pruned",
                                            const_value=ir.tensor(sizes)))
        node.graph.register_initializer(node.inputs[3])
    return fix


@rule(*sorted(REDUCES))
def reduce(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    axes = attr(node, "axes", None)
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_of(node.inputs[1])
    rank = len(shape_of(x) or [])
    if axes is None or not rank or 1 in [int(a) % rank for a in np.ravel(axes)]:
        freeze_all(node, cg, f"{node.op_type} {_name(node)!r} reduces over channels")
        return
    cg.set(out, cg.ids[x], cg.zero[x])


@rule("Concat")
def concat(node, cg: ChannelGraph) -> None:
    out = node.outputs[0]
    rank = len(shape_of(out) or [])
    axis = int(attr(node, "axis", 0)) % rank if rank else None
    if axis is None or not any(cg.tracked(v) for v in node.inputs):
        freeze_all(node, cg)
        return
    if axis != 1:
        tracked = [v for v in node.inputs if cg.tracked(v)]
        for v in tracked[1:]:
            cg.union(cg.ids[tracked[0]], cg.ids[v])
        for v in node.inputs:
            if not cg.tracked(v) and (shape_of(v) or [0, 0])[1] not in (None, 1):
                freeze_all(node, cg, f"Concat {_name(node)!r} mixes untracked channels")
                return
        cg.set(out, cg.ids[tracked[0]], np.logical_and.reduce([cg.zero[v] for v in tracked]))
        return
    ids, zero = [], []
    for v in node.inputs:
        if cg.tracked(v):
            ids.append(cg.ids[v])
            zero.append(cg.zero[v])
            continue
        s = shape_of(v)
        if s is None or s[1] is None:
            freeze_all(node, cg, f"Concat {_name(node)!r} has an input of unknown width")
            return
        new = cg.new_ids(s[1])
        for i in new.tolist():
            cg.frozen[i] = f"channels of {v.name!r}, which the analysis does not track"
        ids.append(new)
        zero.append(np.zeros(s[1], bool))
    cg.set(out, np.concatenate(ids), np.concatenate(zero))


@rule("Flatten", "Reshape")
def flatten(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    xs, os_ = shape_of(x), shape_of(out)
    ok = xs is not None and os_ is not None and None not in xs[1:] and len(os_) == 2 and \
        (node.op_type == "Reshape" or int(attr(node, "axis", 1)) == 1)
    spatial = int(np.prod(xs[2:])) if ok else 0
    if not ok or os_[1] not in (None, xs[1] * spatial):
        freeze_all(node, cg, f"{node.op_type} {_name(node)!r} moves channels")
        return
    cg.set(out, np.repeat(cg.ids[x], spatial), np.repeat(cg.zero[x], spatial))
    if node.op_type == "Reshape":
        shape = const_of(node.inputs[1])
        if shape is None:
            freeze_all(node, cg, f"Reshape {_name(node)!r} has a computed shape")
            return
        if int(shape[1]) not in (-1, 0):
            cg.fixups.append(_reshape_fixup(node, out))


def _reshape_fixup(node, out):
    def fix(keep_of) -> None:
        import onnx_ir as ir

        shape = np.array(const_of(node.inputs[1]), dtype=np.int64)
        shape[1] = len(keep_of(out))
        node.replace_input_with(1, ir.Value(name=f"{node.inputs[1].name}_pruned",
                                            const_value=ir.tensor(shape)))
        node.graph.register_initializer(node.inputs[1])
    return fix


@rule("Gemm", "MatMul")
def gemm(node, cg: ChannelGraph) -> None:
    a, w = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if node.op_type == "Gemm" and len(node.inputs) > 2 else None
    out = node.outputs[0]
    ok = _init(w) and not _shared(w) and len(w.const_value.shape) == 2 and \
        len(shape_of(a) or []) == 2 and not attr(node, "transA", 0) and \
        (c is None or (_init(c) and not _shared(c)))
    if not ok:
        freeze_all(node, cg, f"{node.op_type} {_name(node)!r} is not a 2-D layer with a "
                             "constant weight")
        return
    trans_b = bool(attr(node, "transB", 0)) if node.op_type == "Gemm" else False
    in_axis, out_axis = (1, 0) if trans_b else (0, 1)
    if cg.tracked(a):
        cg.block_nonzero(a, f"{node.op_type} {_name(node)!r}")
        cg.slices.append(Slice(w, in_axis, a, False, _name(node), "weight in"))
    n_out = w.const_value.shape[out_axis]
    _new_output(cg, out, n_out)
    cg.producers.append(Producer(w, out_axis, out, _name(node), node.op_type))
    cg.slices.append(Slice(w, out_axis, out, True, _name(node), "weight out"))
    if c is not None:
        cs = list(c.const_value.shape)
        if cs and cs[-1] == n_out and n_out > 1:
            cg.slices.append(Slice(c, len(cs) - 1, out, True, _name(node), "bias"))
