"""Index ops written as Gathers with index maps computed at conversion, and small
rewrites: GatherElements, Compress, ScatterND / ScatterElements / Scatter (constant
indices), MaxUnpool (constant indices), Col2Im, CenterCropPad, ReverseSequence
(constant lengths), OneHot, ArgMax/ArgMin with ``select_last_index``.

When the indices are constants, where every output element comes from is known
before run time: the op becomes ``Gather(reshape(x, [-1]), map)`` with ``map`` of
the output's shape (a ``-1`` entry reads an appended zero). Scatters combine the
data with the updates gathered that way: a ``Where`` on the written positions
(``reduction="none"``: the last write wins, as in ONNX's reference), or ``Add`` /
``Mul`` / ``Max`` / ``Min`` of one gather per write a position receives (the
neutral element where it receives fewer). Negative indices are normalized here;
indices computed at run time go through ``idx + n * (idx < 0)`` (GatherElements,
OneHot), so nothing negative reaches a kernel.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.graph_edit import Emitter


def _static(v: Optional[ir.Value]) -> Optional[List[int]]:
    if v is None or v.shape is None or any(not isinstance(d, int) for d in v.shape):
        return None
    return list(v.shape)


def _const(v: Optional[ir.Value]) -> Optional[np.ndarray]:
    if v is None or v.const_value is None:
        return None
    return np.asarray(v.const_value.numpy())


def _opt(node: ir.Node, i: int) -> Optional[ir.Value]:
    return node.inputs[i] if len(node.inputs) > i else None


def gather_flat(e: Emitter, x: ir.Value, src: np.ndarray, fill: float = 0.0) -> ir.Value:
    """``x.flat[src]`` with the shape of ``src`` (an entry -1 reads ``fill``)."""
    size = int(np.prod(_static(x)))
    flat = e.reshape(x, [size])
    src = np.asarray(src, np.int64)
    if (src < 0).any():
        pad = np.full([1], fill, x.dtype.numpy())
        flat = e.concat([flat, e.const(pad, pad.dtype, "fill")], 0)
        src = np.where(src < 0, size, src)
    return e.op("Gather", [flat, e.ints(src)], {"axis": 0})


def _writes(target: np.ndarray, n_out: int) -> np.ndarray:
    """[T, n_out]: the source positions written to each output position, in write order
    (-1 past the last), from ``target`` (the output position of each source element; -1:
    written nowhere)."""
    lists: List[List[int]] = [[] for _ in range(n_out)]
    for s, t in enumerate(np.asarray(target).reshape(-1)):
        if t >= 0:
            lists[int(t)].append(s)
    depth = max((len(x) for x in lists), default=0)
    out = np.full((max(depth, 1), n_out), -1, np.int64)
    for t, srcs in enumerate(lists):
        out[:len(srcs), t] = srcs
    return out


def _normalize(idx: np.ndarray, dim: int) -> np.ndarray:
    return np.where(idx < 0, idx + dim, idx)


def _runtime_normalized(e: Emitter, idx: ir.Value, dim: int) -> ir.Value:
    """idx + dim where idx < 0 (indices computed at run time)."""
    if idx.dtype != ir.DataType.INT64:
        idx = e.cast(idx, ir.DataType.INT64)
    neg = e.op("Greater", [e.ints(np.int64(0)), idx], dtype=ir.DataType.BOOL)
    return e.op("Where", [neg, e.op("Add", [idx, e.ints(np.int64(dim))]), idx],
                dtype=ir.DataType.INT64)


# -- gathers ----------------------------------------------------------------------------------

def _needs_constants(inputs: Sequence[int], what: str
                     ) -> Callable[[ir.Node], Optional[str]]:
    """A refusal for a decomposition that reads inputs ``inputs`` as constants (``what``
    says so when one is not) and needs input 0's static shape."""
    def refuse(node: ir.Node) -> Optional[str]:
        if any(_const(node.inputs[i]) is None for i in inputs):
            return what
        if _static(node.inputs[0]) is None:
            return "the input needs a static shape"
        return None
    return refuse


def _refuse_gather_elements(node: ir.Node) -> Optional[str]:
    if _static(node.inputs[0]) is None or _static(node.inputs[1]) is None:
        return "data and indices need static shapes"
    return None


@decomposition("GatherElements", "Gather of data.flat at the flattened positions the "
               "indices name (computed at conversion when they are constant)",
               refuse=_refuse_gather_elements)
def _gather_elements(e: Emitter, node: ir.Node) -> List[ir.Value]:
    data, idx = node.inputs[0], node.inputs[1]
    shape, ishape = _static(data), _static(idx)
    axis = node.attributes.get_int("axis", 0) % len(shape)
    strides = [int(np.prod(shape[k + 1:])) for k in range(len(shape))]
    coords = np.indices(ishape)
    base = sum(coords[k] * strides[k] for k in range(len(shape)) if k != axis)
    c = _const(idx)
    if c is not None:
        return [gather_flat(e, data, base + _normalize(c.astype(np.int64), shape[axis])
                            * strides[axis])]
    along = _runtime_normalized(e, idx, shape[axis])
    if strides[axis] != 1:
        along = e.op("Mul", [along, e.ints(np.int64(strides[axis]))])
    flat = e.op("Add", [along, e.ints(base.astype(np.int64))])
    return [e.op("Gather", [e.reshape(data, [-1]), flat], {"axis": 0})]


_refuse_compress = _needs_constants(
    (1,), "the condition must be constant (the output size depends on it)")


@decomposition("Compress", "Gather of the positions where the (constant) condition is true",
               refuse=_refuse_compress)
def _compress(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    cond = _const(node.inputs[1]).astype(bool).reshape(-1)
    a = node.attributes.get("axis")
    if a is None:
        n = int(np.prod(_static(x)))
        keep = np.nonzero(cond[:n])[0]
        return [gather_flat(e, x, keep)]
    axis = a.value % len(x.shape)
    keep = np.nonzero(cond[:x.shape[axis]])[0]
    return [e.op("Gather", [x, e.ints(keep)], {"axis": axis})]


# -- scatters ---------------------------------------------------------------------------------

_NEUTRAL = {"add": 0.0, "mul": 1.0, "max": -np.inf, "min": np.inf}
_COMBINE = {"add": "Add", "mul": "Mul", "max": "Max", "min": "Min"}


def _refuse_scatter(node: ir.Node) -> Optional[str]:
    if _const(node.inputs[1]) is None:
        return "the indices must be constant (TFLite's SCATTER_ND sums into zeros and " \
               "cannot update data)"
    if _static(node.inputs[0]) is None or _static(node.inputs[2]) is None:
        return "data and updates need static shapes"
    return None


def _scatter(e: Emitter, data: ir.Value, updates: ir.Value, target: np.ndarray,
             reduction: str) -> ir.Value:
    """``data`` with ``updates`` (element k going to ``data.flat[target[k]]``) applied."""
    shape = _static(data)
    n = int(np.prod(shape))
    writes = _writes(target, n)
    if reduction == "none":
        last = np.full(n, -1, np.int64)
        for row in writes:
            last = np.where(row >= 0, row, last)
        written = e.const((last >= 0).reshape(shape), np.bool_, "written")
        return e.op("Where", [written, gather_flat(e, updates, last.reshape(shape)), data],
                    like=data)
    out = data
    for row in writes:
        got = gather_flat(e, updates, row.reshape(shape), _NEUTRAL[reduction])
        out = e.op(_COMBINE[reduction], [out, got])
    return out


@decomposition("ScatterElements", "data with updates written at constant positions: Where / "
               "Add / Mul / Max / Min of Gathers of the updates", refuse=_refuse_scatter)
def _scatter_elements(e: Emitter, node: ir.Node) -> List[ir.Value]:
    data, idx, updates = node.inputs[0], node.inputs[1], node.inputs[2]
    shape = _static(data)
    axis = node.attributes.get_int("axis", 0) % len(shape)
    ind = _normalize(_const(idx).astype(np.int64), shape[axis])
    coords = list(np.indices(ind.shape))
    coords[axis] = ind
    target = np.ravel_multi_index(tuple(coords), shape)
    return [_scatter(e, data, updates, target, node.attributes.get_string("reduction", "none"))]


@decomposition("Scatter", "ScatterElements (opset 9-10) at constant positions",
               refuse=_refuse_scatter, opsets=(1, 10))
def _scatter_old(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return _scatter_elements(e, node)


@decomposition("ScatterND", "data with update slices written at constant index tuples",
               refuse=_refuse_scatter)
def _scatter_nd(e: Emitter, node: ir.Node) -> List[ir.Value]:
    data, idx, updates = node.inputs[0], node.inputs[1], node.inputs[2]
    shape = _static(data)
    ind = _const(idx).astype(np.int64)
    k = ind.shape[-1]
    tuples = _normalize(ind.reshape(-1, k), np.array(shape[:k]))
    inner = int(np.prod(shape[k:]))
    starts = np.ravel_multi_index(tuple(tuples.T), shape[:k]) * inner
    target = (starts[:, None] + np.arange(inner)[None, :]).reshape(-1)
    return [_scatter(e, data, updates, target, node.attributes.get_string("reduction", "none"))]


def _refuse_unpool(node: ir.Node) -> Optional[str]:
    if _const(node.inputs[1]) is None:
        return "the indices must be constant (a MaxPool's indices have no TFLite kernel)"
    if _static(node.inputs[0]) is None:
        return "the input needs a static shape"
    out = _opt(node, 2)
    if out is not None and _const(out) is None:
        return "output_shape must be constant"
    return None


@decomposition("MaxUnpool", "Gather of the input at the constant inverse of the indices "
               "(zeros elsewhere)", refuse=_refuse_unpool)
def _max_unpool(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, idx = node.inputs[0], node.inputs[1]
    shape = _static(x)
    a = node.attributes
    kernel = list(a.get_ints("kernel_shape"))
    n = len(kernel)
    strides = list(a.get_ints("strides", [1] * n))
    pads = list(a.get_ints("pads", [0] * 2 * n))
    inferred = shape[:2] + [(shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + n] + kernel[i]
                            for i in range(n)]
    out_shape = [int(v) for v in _const(node.inputs[2])] if _opt(node, 2) is not None \
        else inferred
    src = np.full(int(np.prod(inferred)), -1, np.int64)
    src[_const(idx).astype(np.int64).reshape(-1)] = np.arange(int(np.prod(shape)))
    grid = np.full(out_shape, -1, np.int64)
    grid[tuple(slice(0, d) for d in inferred)] = src.reshape(inferred)
    return [gather_flat(e, x, grid)]


# -- layout ops -------------------------------------------------------------------------------

_refuse_col2im = _needs_constants((1, 2), "image_shape and block_shape must be constant")


@decomposition("Col2Im", "sum of Gathers of the columns each image position receives "
               "(constant maps)", refuse=_refuse_col2im)
def _col2im(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    n, ck, length = _static(x)
    image = [int(v) for v in _const(node.inputs[1])]
    block = [int(v) for v in _const(node.inputs[2])]
    d = len(image)
    a = node.attributes
    dil = list(a.get_ints("dilations", [1] * d))
    pads = list(a.get_ints("pads", [0] * 2 * d))
    strides = list(a.get_ints("strides", [1] * d))
    k = int(np.prod(block))
    c = ck // k
    blocks = [(image[i] + pads[i] + pads[i + d] - dil[i] * (block[i] - 1) - 1) // strides[i] + 1
              for i in range(d)]
    kpos = np.indices(block).reshape(d, -1)              # [d, K]
    bpos = np.indices(blocks).reshape(d, -1)             # [d, L]
    pos = bpos[:, None, :] * np.array(strides)[:, None, None] - np.array(pads[:d])[:, None, None] \
        + kpos[:, :, None] * np.array(dil)[:, None, None]   # [d, K, L]
    inside = np.all((pos >= 0) & (pos < np.array(image)[:, None, None]), axis=0)
    img = np.ravel_multi_index(tuple(np.clip(pos, 0, np.array(image)[:, None, None] - 1)), image)
    per_n = int(np.prod(image))
    target = np.full((n, c, k, length), -1, np.int64)
    for ni in range(n):
        for ci in range(c):
            target[ni, ci] = np.where(inside, (ni * c + ci) * per_n + img, -1)
    out_n = n * c * per_n
    writes = _writes(target.reshape(-1), out_n)
    out = None
    for row in writes:
        got = gather_flat(e, x, row.reshape([n, c] + image))
        out = got if out is None else e.op("Add", [out, got])
    return [out]


_refuse_center_crop = _needs_constants((1,), "the target shape must be constant")


@decomposition("CenterCropPad", "Slice (crop) and Pad (zeros) centred on each axis",
               refuse=_refuse_center_crop)
def _center_crop_pad(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    shape = _static(x)
    target = [int(v) for v in _const(node.inputs[1])]
    axes = [v % len(shape) for v in node.attributes.get_ints("axes", list(range(len(shape))))]
    starts, ends, sl_axes = [], [], []
    pads = [0] * (2 * len(shape))
    for a, t in zip(axes, target):
        dim = shape[a]
        if t < dim:
            starts.append((dim - t) // 2)
            ends.append((dim - t) // 2 + t)
            sl_axes.append(a)
        elif t > dim:
            pads[a] = (t - dim) // 2
            pads[a + len(shape)] = t - dim - (t - dim) // 2
    if sl_axes:
        x = e.slice(x, starts, ends, sl_axes)
    if any(pads):
        x = e.op("Pad", [x, e.ints(pads), e.like(0, x)]) if e.opset >= 11 else \
            e.op("Pad", [x], {"pads": pads})
    return [x if x is not node.inputs[0] else e.op("Identity", [x])]


_refuse_reverse_sequence = _needs_constants((1,), "sequence_lens must be constant")


@decomposition("ReverseSequence", "Gather of data.flat with each batch entry's first "
               "sequence_lens steps reversed (constant map)", refuse=_refuse_reverse_sequence)
def _reverse_sequence(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    shape = _static(x)
    lens = _const(node.inputs[1]).astype(np.int64)
    t_ax = node.attributes.get_int("time_axis", 0)
    b_ax = node.attributes.get_int("batch_axis", 1)
    coords = np.indices(shape)
    t, b = coords[t_ax], coords[b_ax]
    n = lens[b]
    coords[t_ax] = np.where(t < n, n - 1 - t, t)
    return [gather_flat(e, x, np.ravel_multi_index(tuple(coords), shape))]


# -- small rewrites ---------------------------------------------------------------------------

def _refuse_one_hot(node: ir.Node) -> Optional[str]:
    if _const(node.inputs[1]) is None:
        return "depth must be constant"
    if node.inputs[0].shape is None:
        return "the indices' rank is unknown"
    return None


@decomposition("OneHot", "Where(Unsqueeze(idx + depth * (idx < 0)) == arange(depth), on, off)",
               refuse=_refuse_one_hot)
def _one_hot(e: Emitter, node: ir.Node) -> List[ir.Value]:
    idx, values = node.inputs[0], node.inputs[2]
    depth = int(np.asarray(_const(node.inputs[1])).reshape(-1)[0])
    rank = len(idx.shape) + 1
    axis = node.attributes.get_int("axis", -1) % rank
    norm = _runtime_normalized(e, idx, depth)        # float indices: cast (truncated)
    hot = e.op("Equal", [e.unsqueeze(norm, [axis]), e.ints(
        np.arange(depth).reshape([depth if k == axis else 1 for k in range(rank)]))],
               dtype=ir.DataType.BOOL)
    off = e.op("Gather", [values, e.ints(np.int64(0))], {"axis": 0})
    on = e.op("Gather", [values, e.ints(np.int64(1))], {"axis": 0})
    return [e.op("Where", [hot, on, off], dtype=values.dtype)]


def _refuse_arg(node: ir.Node) -> Optional[str]:
    if not node.attributes.get_int("select_last_index", 0):
        return "only select_last_index=1 needs a decomposition"
    x = node.inputs[0]
    if x.shape is None:
        return "the input rank is unknown"
    axis = node.attributes.get_int("axis", 0) % len(x.shape)
    if not isinstance(x.shape[axis], int):
        return "the reduced dim must be static"
    return None


def _arg_last(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    axis = node.attributes.get_int("axis", 0) % len(x.shape)
    n = x.shape[axis]
    rev = e.slice(x, [n - 1], [-n - 1], [axis], [-1])
    first = e.op(node.op_type, [rev], {"axis": axis,
                                       "keepdims": node.attributes.get_int("keepdims", 1)})
    return [e.op("Sub", [e.ints(np.int64(n - 1)), first])]


decomposition("ArgMax", "n - 1 - ArgMax(x reversed along axis) (select_last_index)",
              refuse=_refuse_arg)(_arg_last)
decomposition("ArgMin", "n - 1 - ArgMin(x reversed along axis) (select_last_index)",
              refuse=_refuse_arg)(_arg_last)
