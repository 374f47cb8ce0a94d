"""Per-op rules of the channel analysis: how each op moves, makes or consumes channels.

One function per op family, registered for its op types in an
``edgert.op_registry`` table (duplicates are an error). A rule reads its inputs' channel
ids from the ChannelGraph, sets its
outputs' ids and "zero once masked" flags, and records the initializer slices
its op needs when channels go. An op with no rule freezes every channel it
touches, so an unknown op can make pruning do less, never something wrong.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np

from converters.layout.graph import attr, const_of, shape_of
from converters.pruning.graph import ChannelGraph, Producer, Slice
from edgert.op_registry import OpRegistry

RULES: OpRegistry[Callable] = OpRegistry("channel rule")

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
    """Register the decorated function as the channel rule of ``op_types`` (default domain)."""
    return RULES.register(*op_types)


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


def _new_output(cg: ChannelGraph, out, n: int, axis: int = 1) -> np.ndarray:
    ids = cg.new_ids(n)
    cg.set(out, ids, np.ones(n, bool), axis)
    return ids


def _rank(value) -> int:
    return len(shape_of(value) or [])


def _on_axis(node, cg: ChannelGraph, x, axis: int = 1) -> bool:
    """``x`` is tracked with its channels on ``axis`` (what an NCHW op such as Conv or
    BatchNorm reads). Tracked channels on another axis are frozen, with the reason."""
    if not cg.tracked(x):
        return False
    if cg.axis_of(x) != axis:
        cg.freeze(x, f"{node.op_type} {_name(node)!r} reads channels on axis {axis}, this "
                     f"tensor has them on axis {cg.axis_of(x)}")
        return False
    return True


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
    tracked = _on_axis(node, cg, x)
    if group == 1:
        if tracked:
            cg.block_nonzero(x, f"Conv {_name(node)!r}")
            cg.slices.append(Slice(w, 1, x, False, _name(node), "weight in"))
        _new_output(cg, out, c_out)
        cg.producers.append(Producer(w, 0, out, _name(node), "Conv"))
        cg.slices.append(Slice(w, 0, out, True, _name(node), "weight out"))
        if b is not None:
            cg.slices.append(Slice(b, 0, out, True, _name(node), "bias"))
        return
    if group == c_in == c_out and wa.shape[1] == 1 and tracked:
        cg.set(out, cg.ids[x], np.ones(c_out, bool))      # depthwise: same channels
        cg.slices.append(Slice(w, 0, out, True, _name(node), "depthwise weight"))
        if b is not None:
            cg.slices.append(Slice(b, 0, out, True, _name(node), "bias"))
        cg.fixups.append(_group_fixup(node, out, cg))
        return
    _grouped_conv(node, cg, x, w, b, group, tracked)


def _grouped_conv(node, cg: ChannelGraph, x, w, b, group: int, tracked: bool) -> None:
    """1 < group < channels (ResNeXt, RegNet, ShuffleNet): output channels are new, as for
    a plain Conv; input block g feeds only output block g, so the weight's input axis is
    sliced group by group, and both sides are *splits*: every group must stay as wide as
    the others (``group`` is unchanged), which the plan keeps by pruning evenly."""
    why = f"grouped Conv {_name(node)!r} (group {group})"
    out = node.outputs[0]
    if tracked:
        cg.block_nonzero(x, f"Conv {_name(node)!r}")
        cg.slices.append(Slice(w, 1, x, False, _name(node), "grouped weight in", group))
        cg.splits.append((x, group, f"{why} input"))
    _new_output(cg, out, w.const_value.shape[0])
    cg.producers.append(Producer(w, 0, out, _name(node), "Conv"))
    cg.slices.append(Slice(w, 0, out, True, _name(node), "weight out"))
    if b is not None:
        cg.slices.append(Slice(b, 0, out, True, _name(node), "bias"))
    cg.splits.append((out, group, f"{why} output"))


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
    if _on_axis(node, cg, x):
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
    if not _on_axis(node, cg, x) or not all(_init(v) and not _shared(v) for v in params) or \
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


@rule("LayerNormalization")
def layer_norm(node, cg: ChannelGraph) -> None:
    """Channels pass when the normalized axes leave them out; normalizing over them mixes
    every channel into every other, so none can go."""
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    rank = _rank(x)
    start = int(attr(node, "axis", -1)) % rank if rank else None
    if start is None or cg.axis_of(x) >= start or len(node.outputs) > 1 and any(
            o is not None and list(o.uses()) for o in node.outputs[1:]):
        freeze_all(node, cg, f"LayerNormalization {_name(node)!r} normalizes over the channels")
        return
    cg.set(out, cg.ids[x], np.zeros(len(cg.ids[x]), bool), cg.axis_of(x))  # bias: not zero


@rule(*sorted(ZERO_PRESERVING | ZERO_LOSING))
def unary(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    keeps_zero = node.op_type in ZERO_PRESERVING
    if node.op_type == "Clip":
        lo, hi = _clip_bounds(node)
        keeps_zero = (lo is None or lo <= 0.0) and (hi is None or hi >= 0.0)
    cg.set(out, cg.ids[x], cg.zero[x] & keeps_zero, cg.axis_of(x))


def _clip_bounds(node):
    lo, hi = attr(node, "min", None), attr(node, "max", None)
    vals = [const_of(v) if v is not None else None for v in list(node.inputs[1:3])]
    if len(vals) > 0 and vals[0] is not None:
        lo = float(vals[0])
    if len(vals) > 1 and vals[1] is not None:
        hi = float(vals[1])
    return lo, hi


def _channel_dim(shape: List[Optional[int]], rank: int, axis: int = 1) -> Optional[int]:
    """Channel axis (``axis`` of the output's ``rank``) in a right-aligned broadcast operand."""
    k = axis - (rank - len(shape))
    return k if 0 <= k < len(shape) else None


def _output_axis(cg: ChannelGraph, tracked, rank: int) -> Optional[int]:
    """The output's channel axis, the same for every tracked input (right-aligned), or None."""
    if any(_rank(v) == 0 for v in tracked):
        return None
    axes = {cg.axis_of(v) + rank - _rank(v) for v in tracked}
    return axes.pop() if len(axes) == 1 else None


def _align_frozen(node, cg: ChannelGraph, tracked, rank: int):
    """Inputs whose channel axis disagrees with the others', when every one of their
    classes is frozen anyway (a graph input, whose channel axis is a guess), are seen on
    the others' axis as frozen channels with the same reason; returns the new list."""
    def frozen(v) -> bool:
        return all(cg.find(int(i)) in reasons for i in cg.ids[v].tolist())

    reasons = cg.class_reasons()
    live = [v for v in tracked if not frozen(v)]
    axis = _output_axis(cg, live, rank) if live else None
    if axis is None:
        return tracked
    out = []
    for v in tracked:
        s = shape_of(v)
        k = None if s is None else _channel_dim(s, rank, axis)
        if v in live or cg.axis_of(v) + rank - len(s or []) == axis:
            out.append(v)
        elif k is not None and s[k] is not None:
            why = reasons[cg.find(int(cg.ids[v][0]))]
            ids = cg.new_ids(s[k])
            for i in ids.tolist():
                cg.frozen[i] = why
            cg.set(v, ids, np.zeros(s[k], bool), k)   # seen from here on with this axis
            out.append(v)
        else:
            return tracked
    return out


@rule(*sorted(ELEMENTWISE))
def elementwise(node, cg: ChannelGraph) -> None:
    out = node.outputs[0]
    oshape = shape_of(out)
    tracked = [v for v in node.inputs if cg.tracked(v)]
    if not tracked:
        return
    rank = len(oshape or [])
    if oshape is not None and _output_axis(cg, tracked, rank) is None:
        tracked = _align_frozen(node, cg, tracked, rank)
    axis = _output_axis(cg, tracked, rank) if oshape is not None and tracked else None
    if axis is None or rank < 2 or oshape[axis] is None:
        freeze_all(node, cg, None if oshape is None else
                   f"{node.op_type} {_name(node)!r} joins tensors with channels on different "
                   "axes")
        return
    c = oshape[axis]
    consts = []
    for k, v in enumerate(node.inputs):
        s = shape_of(v)
        ax = None if s is None else _channel_dim(s, rank, axis)
        size = None if ax is None else s[ax]
        if cg.tracked(v):
            if size != c:
                freeze_all(node, cg, f"{node.op_type} {_name(node)!r} broadcasts channels")
                return
        elif _init(v) and size == c and c > 1:
            consts.append((k, v, ax))
        elif size not in (None, 1) or (s is None and not _init(v)):
            freeze_all(node, cg, f"{node.op_type} {_name(node)!r} mixes in a tensor with "
                                 "channels the analysis does not track")
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
    cg.set(out, cg.ids[tracked[0]], zero, axis)
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
    axis = cg.axis_of(x)
    if node.op_type != "Pad" and not _on_axis(node, cg, x):   # pooling, resize: NCHW
        return
    zero = cg.zero[x]
    if node.op_type == "Pad":
        pads = const_of(node.inputs[1]) if len(node.inputs) > 1 else attr(node, "pads", None)
        rank = len(shape_of(x) or [])
        if pads is None or not rank or len(pads) != 2 * rank or int(pads[axis]) or \
                int(pads[axis + rank]):
            freeze_all(node, cg, f"Pad {_name(node)!r} pads channels or has unknown pads")
            return
        value = const_of(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None \
            else np.zeros(())
        if attr(node, "mode", "constant") in ("constant", b"constant") and float(value) != 0:
            zero = np.zeros_like(zero)
    if node.op_type in ("Resize", "Upsample") and len(node.inputs) > 3 and \
            node.inputs[3] is not None:
        cg.fixups.append(_sizes_fixup(node, out))
    cg.set(out, cg.ids[x], zero, axis)


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
    axis = cg.axis_of(x)
    reduced = sorted({int(a) % rank for a in np.ravel(axes)}) if axes is not None and rank \
        else None
    if not reduced or axis in reduced:
        freeze_all(node, cg, f"{node.op_type} {_name(node)!r} reduces over channels")
        return
    if not int(attr(node, "keepdims", 1)):
        axis -= sum(a < axis for a in reduced)
    cg.set(out, cg.ids[x], cg.zero[x], axis)


@rule("Concat")
def concat(node, cg: ChannelGraph) -> None:
    out = node.outputs[0]
    rank = len(shape_of(out) or [])
    axis = int(attr(node, "axis", 0)) % rank if rank else None
    tracked = [v for v in node.inputs if cg.tracked(v)]
    if axis is None or not tracked:
        freeze_all(node, cg)
        return
    ch = _output_axis(cg, tracked, rank)
    if ch is None:
        freeze_all(node, cg, f"Concat {_name(node)!r} joins tensors with channels on "
                             "different axes")
        return
    if axis != ch:
        for v in tracked[1:]:
            cg.union(cg.ids[tracked[0]], cg.ids[v])
        for v in node.inputs:
            if not cg.tracked(v) and (shape_of(v) or [0] * rank)[ch] not in (None, 1):
                freeze_all(node, cg, f"Concat {_name(node)!r} mixes untracked channels")
                return
        cg.set(out, cg.ids[tracked[0]], np.logical_and.reduce([cg.zero[v] for v in tracked]),
               ch)
        return
    ids, zero = [], []
    for v in node.inputs:
        if cg.tracked(v):
            ids.append(cg.ids[v])
            zero.append(cg.zero[v])
            continue
        s = shape_of(v)
        if s is None or s[ch] is None:
            freeze_all(node, cg, f"Concat {_name(node)!r} has an input of unknown width")
            return
        new = cg.new_ids(s[ch])
        for i in new.tolist():
            cg.frozen[i] = f"channels of {v.name!r}, which the analysis does not track"
        ids.append(new)
        zero.append(np.zeros(s[ch], bool))
    cg.set(out, np.concatenate(ids), np.concatenate(zero), ch)


@rule("Flatten", "Reshape")
def flatten(node, cg: ChannelGraph) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    xs, os_ = shape_of(x), shape_of(out)
    if xs is not None and os_ is not None and len(xs) >= 2 and cg.axis_of(x) == len(xs) - 1 \
            and node.op_type == "Reshape" and len(os_) and os_[-1] == xs[-1] and \
            (len(xs) > 2 or len(os_) > 2):
        _reshape_channels_last(node, cg, x, out, xs, os_)
        return
    if cg.axis_of(x) != 1:
        freeze_all(node, cg, f"{node.op_type} {_name(node)!r} moves channels")
        return
    if node.op_type == "Reshape" and _channel_shuffle(node, cg, x):
        return
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
            cg.fixups.append(_reshape_fixup(node, out, 1))


def _only_use(value, op_type: str):
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output() or uses[0][0].op_type != op_type:
        return None
    return uses[0][0]


def _channel_shuffle(node, cg: ChannelGraph, x) -> bool:
    """ShuffleNet's Reshape [N, C, H, W] -> [N, g, C/g, H, W], Transpose 1 <-> 2, Reshape
    back: output channel a * g + b is input channel b * C/g + a. Channel a of every block
    is united with channel a of the others (the shuffle only stays a shuffle when every
    block loses the same positions), and the shuffled ids go to the last Reshape's output;
    the two shapes are fixed up. False (nothing done) when the pattern does not match."""
    xs, mid = shape_of(x), shape_of(node.outputs[0])
    tr = _only_use(node.outputs[0], "Transpose")
    back = _only_use(tr.outputs[0], "Reshape") if tr is not None else None
    if back is None or xs is None or mid is None or len(xs) != 4 or len(mid) != 5 or \
            None in xs[1:] or [int(p) for p in attr(tr, "perm", [])] != [0, 2, 1, 3, 4]:
        return False
    first, last, os_ = const_of(node.inputs[1]), const_of(back.inputs[1]), \
        shape_of(back.outputs[0])
    c, g = xs[1], mid[1]
    if first is None or last is None or os_ is None or g is None or g < 2 or c % g or \
            list(mid[2:]) != [c // g] + list(xs[2:]) or list(os_[1:]) != list(xs[1:]) or \
            int(first[1]) != g or int(last[1]) not in (c, -1):
        return False
    blocks = cg.ids[x].reshape(g, c // g)
    for k in range(1, g):
        cg.union(blocks[0], blocks[k])
    out = back.outputs[0]
    cg.set(out, blocks.T.reshape(-1), cg.zero[x].reshape(g, c // g).T.reshape(-1))
    cg.fixups.append(_shuffle_fixup(node, tr, back, out, g))
    return True


def _shuffle_fixup(node, tr, back, out, g: int):
    def fix(keep_of) -> None:
        import onnx_ir as ir

        c = len(keep_of(out))
        for n, index, value in ((node, 2, c // g), (back, 1, c)):
            shape = np.array(const_of(n.inputs[1]), dtype=np.int64)
            if int(shape[index]) == -1:
                continue
            shape[index] = value
            n.replace_input_with(1, ir.Value(name=f"{n.inputs[1].name}_pruned",
                                             const_value=ir.tensor(shape)))
            n.graph.register_initializer(n.inputs[1])
        for v, axis in ((node.outputs[0], 2), (tr.outputs[0], 1)):
            if v.shape is not None:
                dims = list(v.shape)
                dims[axis] = c // g
                v.shape = ir.Shape(dims)
    return fix


def _reshape_channels_last(node, cg: ChannelGraph, x, out, xs, os_) -> None:
    """[..., C] -> [..., C] (tokens merged or split, the last axis kept): channels stay last."""
    shape = const_of(node.inputs[1])
    c = xs[-1]
    if shape is None or not len(os_) or os_[-1] != c or c is None or \
            int(shape[-1]) not in (-1, c) or (int(shape[-1]) == 0 and len(shape) != len(xs)):
        freeze_all(node, cg, f"Reshape {_name(node)!r} moves channels")
        return
    cg.set(out, cg.ids[x], cg.zero[x], len(os_) - 1)
    if int(shape[-1]) == c:
        cg.fixups.append(_reshape_fixup(node, out, len(shape) - 1))


def _reshape_fixup(node, out, index: int):
    def fix(keep_of) -> None:
        import onnx_ir as ir

        shape = np.array(const_of(node.inputs[1]), dtype=np.int64)
        shape[index] = len(keep_of(out))
        node.replace_input_with(1, ir.Value(name=f"{node.inputs[1].name}_pruned",
                                            const_value=ir.tensor(shape)))
        node.graph.register_initializer(node.inputs[1])
    return fix


@rule("Transpose")
def transpose(node, cg: ChannelGraph) -> None:
    """Channels move to wherever the permutation puts their axis (NCHW <-> NHWC)."""
    x, out = node.inputs[0], node.outputs[0]
    if not cg.tracked(x):
        return
    rank = _rank(x)
    perm = attr(node, "perm", None)
    perm = [int(p) for p in perm] if perm is not None else list(range(rank))[::-1]
    if not rank or sorted(perm) != list(range(rank)):
        freeze_all(node, cg, f"Transpose {_name(node)!r} has an unknown permutation")
        return
    cg.set(out, cg.ids[x], cg.zero[x], perm.index(cg.axis_of(x)))


@rule("Gemm", "MatMul")
def gemm(node, cg: ChannelGraph) -> None:
    a, w = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if node.op_type == "Gemm" and len(node.inputs) > 2 else None
    out = node.outputs[0]
    rank = _rank(a)
    # Gemm: 2-D. MatMul with a constant [K, N] weight: a Linear layer on the last axis of
    # [batch, K] or [batch, tokens, K] (its features are the channels, on the last axis)
    ok = _init(w) and not _shared(w) and len(w.const_value.shape) == 2 and \
        (rank == 2 or (node.op_type == "MatMul" and rank > 2)) and \
        not attr(node, "transA", 0) and (c is None or (_init(c) and not _shared(c)))
    if not ok:
        freeze_all(node, cg, f"{node.op_type} {_name(node)!r} is not a Linear layer with a "
                             "constant 2-D weight")
        return
    trans_b = bool(attr(node, "transB", 0)) if node.op_type == "Gemm" else False
    in_axis, out_axis = (1, 0) if trans_b else (0, 1)
    if _on_axis(node, cg, a, rank - 1):
        cg.block_nonzero(a, f"{node.op_type} {_name(node)!r}")
        cg.slices.append(Slice(w, in_axis, a, False, _name(node), "weight in"))
    n_out = w.const_value.shape[out_axis]
    _new_output(cg, out, n_out, rank - 1)
    cg.producers.append(Producer(w, out_axis, out, _name(node), node.op_type))
    cg.slices.append(Slice(w, out_axis, out, True, _name(node), "weight out"))
    if c is not None:
        cs = list(c.const_value.shape)
        if cs and cs[-1] == n_out and n_out > 1:
            cg.slices.append(Slice(c, len(cs) - 1, out, True, _name(node), "bias"))
