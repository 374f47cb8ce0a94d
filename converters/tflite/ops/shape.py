"""Data movement: Reshape family, Transpose, Concat, Split, Slice, Gather, GatherND, Pad,
Tile, Expand, DepthToSpace/SpaceToDepth.

Every axis an op names is a *logical* axis; the lowering maps it to the stored
axis with the value's layout (``perm.index(axis)``), so Concat over channels on
an NHWC tensor concatenates on axis 3. Reshape-like ops and Transpose emit
nothing when the layout plan made them free (the output shares the input's
tensor), a RESHAPE when only size-1 dims move, and TRANSPOSE only when the plan
says the data must move.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from converters.layout.graph import attr, const_of, is_const, rank_of, shape_of
from converters.layout.perm import physical_axis, physical_shape
from converters.layout.rewrite import pads_to_pairs
from converters.tflite.registry import lowering
from converters.tflite.schema import options

_BIG = 1 << 30


def check_reshape(node) -> Optional[str]:
    out = shape_of(node.outputs[0])
    if out is None:
        return "the output shape is unknown (run shape inference)"
    if sum(d is None for d in out) > 1:
        return "more than one dynamic dim in the result of a reshape"
    return None


@lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", emits=("RESHAPE",), check=check_reshape)
def lower_reshape(node, ctx) -> None:
    """RESHAPE to the stored output shape, or nothing if the stored shape does not change."""
    x = ctx.input(node, 0)
    in_stored = physical_shape(ctx.shape(node.inputs[0]), ctx.input_perm(node, 0))
    out_stored = ctx.stored_shape(node.outputs[0])
    if list(in_stored) == list(out_stored) or _flatten_into_fc(node, in_stored, out_stored):
        ctx.bind(node.outputs[0], x)
        return
    out = ctx.output(node)
    ctx.reshape(x, out, out_stored)


def _flatten_into_fc(node, in_stored, out_stored) -> bool:
    """A flatten to ``[N, K]`` read only by FULLY_CONNECTED needs no RESHAPE: FC flattens its
    input to ``[numel / K, K]`` itself (stored order, so it holds for NHWC + col_perm too)."""
    from converters.layout.check import fc_only
    if len(out_stored) != 2 or not in_stored or in_stored[0] != out_stored[0]:
        return False
    if any(d is None for d in in_stored[1:]) or out_stored[1] is None:
        return False
    if int(np.prod(in_stored[1:])) != out_stored[1]:
        return False
    return fc_only(node.outputs[0]) and all(
        u.node.op_type != "MatMul" for u in node.outputs[0].uses())


@lowering("Transpose", emits=("TRANSPOSE", "RESHAPE"))
def lower_transpose(node, ctx) -> None:
    """Free unless the plan moves data; then one TRANSPOSE straight to the wanted layout."""
    from converters.layout.check import TransposeRule
    x = ctx.input(node, 0)
    p_in = ctx.input_perm(node, 0)
    if not ctx.plan.is_materialized(node):
        ctx.bind(node.outputs[0], x)
        return
    t = TransposeRule.perm(node)
    p_out = ctx.perm(node.outputs[0])
    q = [list(p_in).index(t[p]) for p in p_out]
    out = ctx.output(node)
    ctx.permute(x, physical_shape(ctx.shape(node.inputs[0]), p_in), q, out)


@lowering("Concat", emits=("CONCATENATION",))
def lower_concat(node, ctx) -> None:
    """Concatenation along the stored position of the logical axis."""
    perm = ctx.perm(node.outputs[0])
    ins = [ctx.tensor_of(v, perm) if is_const(v) else ctx.input(node, i)
           for i, v in enumerate(node.inputs) if v is not None]
    axis = physical_axis(perm, attr(node, "axis", 0))
    if len(ins) == 1:
        ctx.bind(node.outputs[0], ins[0])
        return
    ctx.emit("CONCATENATION", ins, [ctx.output(node)], options("Concatenation", axis=axis))


def _split_sizes(node) -> Optional[List[int]]:
    r = rank_of(node.inputs[0])
    axis = attr(node, "axis", 0) % r
    dim = shape_of(node.inputs[0])[axis]
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        c = const_of(node.inputs[1])
        return None if c is None else [int(s) for s in c.reshape(-1)]
    if attr(node, "split", None):
        return [int(s) for s in attr(node, "split")]
    n = len(node.outputs)
    if dim is None:
        return None
    chunk = -(-dim // n)
    return [min(chunk, dim - k * chunk) for k in range(n)]


def check_split(node) -> Optional[str]:
    if _split_sizes(node) is None:
        return "split sizes must be known at conversion time"
    return None


@lowering("Split", emits=("SPLIT", "SPLIT_V"), check=check_split)
def lower_split(node, ctx) -> None:
    """SPLIT for equal parts, SPLIT_V otherwise, on the stored axis."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    axis = physical_axis(perm, attr(node, "axis", 0))
    sizes = _split_sizes(node)
    outs = [ctx.output(node, i) for i in range(len(node.outputs))]
    axis_t = ctx.const_tensor("split_axis", np.array(axis, dtype=np.int32))
    if len(set(sizes)) == 1:
        ctx.emit("SPLIT", [axis_t, x], outs, options("Split", numSplits=len(outs)))
    else:
        sizes_t = ctx.const_tensor("split_sizes", np.array(sizes, dtype=np.int32))
        ctx.emit("SPLIT_V", [x, sizes_t, axis_t], outs, options("SplitV", numSplits=len(outs)))


def _slice_params(node):
    """(starts, ends, axes, steps) as lists, from inputs (opset >= 10) or attributes."""
    if len(node.inputs) > 1:
        vals = [const_of(node.inputs[i]) if len(node.inputs) > i and node.inputs[i] is not None
                else None for i in range(1, 5)]
        if vals[0] is None or vals[1] is None:
            return None
        starts, ends = vals[0].tolist(), vals[1].tolist()
        axes = vals[2].tolist() if vals[2] is not None else list(range(len(starts)))
        steps = vals[3].tolist() if vals[3] is not None else [1] * len(starts)
        if (len(node.inputs) > 3 and node.inputs[3] is not None and vals[2] is None) or \
                (len(node.inputs) > 4 and node.inputs[4] is not None and vals[3] is None):
            return None
        return starts, ends, axes, steps
    starts, ends = attr(node, "starts"), attr(node, "ends")
    axes = attr(node, "axes", None) or list(range(len(starts)))
    return starts, ends, axes, [1] * len(starts)


def check_slice(node) -> Optional[str]:
    p = _slice_params(node)
    if p is None:
        return "starts/ends/axes/steps must be constant"
    shape = shape_of(node.inputs[0])
    for s, a, st in zip(p[0], p[2], p[3]):
        if shape[a % len(shape)] is None and (s < 0 or st < 0):
            return "negative starts or steps on a dynamic dim"
    return None


@lowering("Slice", emits=("STRIDED_SLICE",), check=check_slice)
def lower_slice(node, ctx) -> None:
    """STRIDED_SLICE with begin/end/strides in stored order (untouched dims masked)."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    shape = ctx.shape(node.inputs[0])
    r = len(shape)
    begin, end, stride = [0] * r, [0] * r, [1] * r
    begin_mask = end_mask = (1 << r) - 1
    for s, e, a, st in zip(*_slice_params(node)):
        a %= r
        j = physical_axis(perm, a)
        s, e, to_end = _normalize(int(s), int(e), int(st), shape[a])
        begin[j], end[j], stride[j] = s, e, int(st)
        begin_mask &= ~(1 << j)
        if not to_end:
            end_mask &= ~(1 << j)
    name = node.outputs[0].name
    ins = [x, ctx.const_tensor(f"{name}_begin", np.array(begin, np.int32)),
           ctx.const_tensor(f"{name}_end", np.array(end, np.int32)),
           ctx.const_tensor(f"{name}_strides", np.array(stride, np.int32))]
    ctx.emit("STRIDED_SLICE", ins, [ctx.output(node)],
             options("StridedSlice", beginMask=begin_mask, endMask=end_mask))


def _normalize(s: int, e: int, st: int, dim: Optional[int]):
    """ONNX slice bounds -> (begin, end, slice-to-the-end?) for STRIDED_SLICE."""
    if dim is None:
        return s, (0 if e >= _BIG else e), e >= _BIG
    if st > 0:
        s = min(max(s + dim if s < 0 else s, 0), dim)
        e = min(max(e + dim if e < 0 else e, 0), dim)
        return s, e, False
    s = min(max(s + dim if s < 0 else s, 0), dim - 1)
    e = min(max(e + dim if e < 0 else e, -1), dim - 1)
    return s, (0 if e < 0 else e), e < 0


def check_gather(node) -> Optional[str]:
    idx = node.inputs[1]
    if idx is not None and idx.dtype is not None and np.dtype(idx.dtype.numpy()).kind not in "iu":
        return "indices must be integers"
    return None


@lowering("Gather", emits=("SLICE", "RESHAPE", "GATHER", "LESS", "ADD", "SELECT_V2"),
          check=check_gather)
def lower_gather(node, ctx) -> None:
    """A constant scalar index is a SLICE + RESHAPE (both delegated); other indices GATHER."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    shape = ctx.shape(node.inputs[0])
    axis = attr(node, "axis", 0) % len(shape)
    j = physical_axis(perm, axis)
    idx = ctx.const(node.inputs[1])
    name = node.outputs[0].name
    if idx is not None and idx.ndim == 0 and shape[axis] is not None:
        k = int(idx) % shape[axis]
        stored = physical_shape(shape, perm)
        begin = [0] * len(stored)
        size = [-1 if d is None else int(d) for d in stored]    # explicit: XNNPACK needs it
        begin[j], size[j] = k, 1
        mid_shape = list(stored)
        mid_shape[j] = 1
        mid = ctx.tmp(f"{name}_slice", mid_shape)
        ctx.emit("SLICE", [x, ctx.const_tensor(f"{name}_begin", np.array(begin, np.int32)),
                           ctx.const_tensor(f"{name}_size", np.array(size, np.int32))], [mid])
        out = ctx.output(node)
        ctx.reshape(mid, out, ctx.stored_shape(node.outputs[0]))
        return
    if idx is not None:
        idx_t = ctx.const_tensor(f"{name}_indices", np.asarray(idx, dtype=np.int32) % (
            shape[axis] if shape[axis] is not None else 1 << 31))
    else:
        idx_t = _non_negative(ctx, node.inputs[1], ctx.input(node, 1), shape[axis], name)
    ctx.emit("GATHER", [x, idx_t], [ctx.output(node)], options("Gather", axis=j))


def _non_negative(ctx, value, idx_t: int, dim, name: str) -> int:
    """Run-time indices with ``dim`` added to the negative ones (LESS, ADD, SELECT_V2):
    TFLite's GATHER refuses negative indices, ONNX counts them from the end. ``dim`` is
    an int, or per-component dims broadcast over the last axis (GATHER_ND's tuples)."""
    if dim is None:
        return idx_t
    from converters.tflite.context import np_dtype

    dt = np_dtype(value)
    shape = ctx.sg.shape(idx_t)
    neg = ctx.tmp(f"{name}_negative", shape, np.bool_)
    ctx.emit("LESS", [idx_t, ctx.const_tensor("zero_index", np.array(0, dt))], [neg])
    wrapped = ctx.tmp(f"{name}_wrapped", shape, dt)
    ctx.emit("ADD", [idx_t, ctx.const_tensor(f"{name}_dim", np.array(dim, dt))], [wrapped],
             options("Add"))
    out = ctx.tmp(f"{name}_index", shape, dt)
    ctx.emit("SELECT_V2", [neg, wrapped, idx_t], [out])
    return out


def check_gather_nd(node) -> Optional[str]:
    if int(attr(node, "batch_dims", 0)) != 0:
        return "batch_dims != 0 has no TFLite GATHER_ND equivalent"
    return check_gather(node)


@lowering("GatherND", emits=("GATHER_ND", "LESS", "ADD", "SELECT_V2"), check=check_gather_nd)
def lower_gather_nd(node, ctx) -> None:
    """GATHER_ND on source-layout data (constant indices made non-negative, int32)."""
    x = ctx.input(node, 0)
    idx = ctx.const(node.inputs[1])
    if idx is not None:
        dims = np.array([d if d is not None else 1 << 31
                         for d in ctx.shape(node.inputs[0])[:idx.shape[-1]]], np.int64)
        idx_t = ctx.const_tensor(f"{node.outputs[0].name}_indices",
                                 (np.asarray(idx, np.int64) % dims).astype(np.int32))
    else:
        dims = ctx.shape(node.inputs[0])[:ctx.shape(node.inputs[1])[-1]]
        idx_t = ctx.input(node, 1)
        if all(d is not None for d in dims):
            idx_t = _non_negative(ctx, node.inputs[1], idx_t, np.array(dims),
                                  node.outputs[0].name)
    ctx.emit("GATHER_ND", [x, idx_t], [ctx.output(node)])


def check_pad(node) -> Optional[str]:
    mode = attr(node, "mode", "constant")
    if mode not in ("constant", "reflect"):
        return f"mode={mode!r} has no TFLite kernel (constant and reflect do)"
    if len(node.inputs) > 1 and not is_const(node.inputs[1]):
        return "pads must be constant"
    if len(node.inputs) > 2 and node.inputs[2] is not None and not is_const(node.inputs[2]):
        return "the pad value must be constant"
    return None


@lowering("Pad", emits=("PAD", "PADV2", "MIRROR_PAD"), check=check_pad)
def lower_pad(node, ctx) -> None:
    """PAD (zeros), PADV2 (another constant) or MIRROR_PAD (reflect), pads in stored order."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    r = len(perm)
    pads = ctx.const(node.inputs[1]).tolist() if len(node.inputs) > 1 else attr(node, "pads")
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        axes = [a % r for a in ctx.const(node.inputs[3]).tolist()]
        full = [0] * (2 * r)
        for k, a in enumerate(axes):
            full[a], full[a + r] = pads[k], pads[k + len(axes)]
        pads = full
    pairs = np.array(pads_to_pairs(pads, perm), dtype=np.int32)
    name = node.outputs[0].name
    pads_t = ctx.const_tensor(f"{name}_pads", pairs)
    out = ctx.output(node)
    if attr(node, "mode", "constant") == "reflect":
        ctx.emit("MIRROR_PAD", [x, pads_t], [out], options("MirrorPad", mode=0))
        return
    value = 0.0
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        value = float(ctx.const(node.inputs[2]))
    elif attr(node, "value", None) is not None:
        value = float(attr(node, "value"))
    if value == 0.0:
        ctx.emit("PAD", [x, pads_t], [out])
    else:
        fill = ctx.const_tensor(f"{name}_value", np.array(value, np.float32))
        ctx.emit("PADV2", [x, pads_t, fill], [out])


@lowering("Tile", emits=("TILE",), check=lambda n: None if is_const(n.inputs[1])
          else "repeats must be constant")
def lower_tile(node, ctx) -> None:
    """TILE with the repeats in stored order."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    reps = ctx.const(node.inputs[1]).tolist()
    ctx.emit("TILE", [x, ctx.const_tensor("multiples", np.array([reps[p] for p in perm],
                                                                 np.int32))], [ctx.output(node)])


def check_expand(node) -> Optional[str]:
    out = shape_of(node.outputs[0])
    if out is None or any(d is None for d in out):
        return "the expanded shape must be static"
    return None


@lowering("Expand", emits=("BROADCAST_TO",), check=check_expand)
def lower_expand(node, ctx) -> None:
    """BROADCAST_TO the (static) output shape."""
    x = ctx.input(node, 0)
    shape = ctx.stored_shape(node.outputs[0])
    ctx.emit("BROADCAST_TO", [x, ctx.const_tensor("broadcast_shape", np.array(shape, np.int32))],
             [ctx.output(node)])


@lowering("Constant", emits=())
def lower_constant(node, ctx) -> None:
    """Nothing to emit: constants are written where they are used, in the layout wanted."""


def check_depth_to_space(node) -> Optional[str]:
    x = shape_of(node.inputs[0])
    if x is None or len(x) != 4:
        return "only rank-4 (NCHW) inputs are supported"
    if attr(node, "mode", "DCR") == "CRD" and any(d is None for d in x[1:]):
        return "mode=CRD needs channels and spatial dims known at conversion time"
    return None


@lowering("DepthToSpace", "SpaceToDepth",
          emits={"DepthToSpace": ("DEPTH_TO_SPACE", "RESHAPE", "TRANSPOSE"),
                 "SpaceToDepth": ("SPACE_TO_DEPTH", "RESHAPE", "TRANSPOSE")},
          check=check_depth_to_space)
def lower_depth_to_space(node, ctx) -> None:
    """DCR depth-to-space / space-to-depth on NHWC; CRD (PixelShuffle) as RESHAPE,
    TRANSPOSE, RESHAPE (``patterns.py`` makes it DCR when a conv's weights can be permuted)."""
    x = ctx.input(node, 0)
    b = int(attr(node, "blocksize"))
    if node.op_type == "DepthToSpace" and attr(node, "mode", "DCR") == "CRD":
        n, h, w, c = ctx.stored_shape(node.inputs[0], ctx.input_perm(node, 0))
        name = node.outputs[0].name
        split = ctx.view(x, [n, h, w, c // (b * b), b, b], f"{name}_split")
        moved = ctx.tmp(f"{name}_moved", [n, h, b, w, b, c // (b * b)])
        ctx.permute(split, [n, h, w, c // (b * b), b, b], [0, 1, 4, 2, 5, 3], moved)
        ctx.reshape(moved, ctx.output(node), ctx.stored_shape(node.outputs[0]))
        return
    kind = "DepthToSpace" if node.op_type == "DepthToSpace" else "SpaceToDepth"
    if kind == "SpaceToDepth" and attr(node, "mode", "DCR") == "CRD":
        # SPACE_TO_DEPTH writes (block, channel) order; CRD wants (channel, block)
        n, h, w, c = ctx.stored_shape(node.outputs[0])
        name = node.outputs[0].name
        dcr = ctx.tmp(f"{name}_dcr", [n, h, w, c])
        ctx.emit("SPACE_TO_DEPTH", [x], [dcr], options(kind, blockSize=b))
        split = ctx.view(dcr, [n, h, w, b * b, c // (b * b)], f"{name}_split")
        moved = ctx.tmp(f"{name}_moved", [n, h, w, c // (b * b), b * b])
        ctx.permute(split, [n, h, w, b * b, c // (b * b)], [0, 1, 2, 4, 3], moved)
        ctx.reshape(moved, ctx.output(node), [n, h, w, c])
        return
    ctx.emit("DEPTH_TO_SPACE" if kind == "DepthToSpace" else "SPACE_TO_DEPTH", [x],
             [ctx.output(node)], options(kind, blockSize=b))
