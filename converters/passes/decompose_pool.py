"""Pools a target's kernels cannot run (3-D, dilated, LpPool) as strided Slices.

A max, sum or L^p pool over a box is separable: pooling along one spatial axis
after another gives the same result. Along one axis, with kernel ``k``, stride
``s``, dilation ``d`` and ``o`` outputs, the pool is the elementwise Max (or Add) of
the ``k`` slices ``x[j*d : j*d + (o-1)*s + 1 : s]`` of the input padded to the
length the windows read (-inf for max, 0 for sums). Averages divide by a constant:
the number of cells each window counts (ONNX's rule: real cells, plus the explicit
pads when ``count_include_pad``; never the cells ceil mode adds), computed at
conversion time as a product of per-axis counts. L^p pools are
``(sum |x|^p)^(1/p)``.

``pool_geometry`` holds the ONNX output-size arithmetic shared with the TFLite pool
lowering: floor or ceil, and ceil mode's rule that a window must start inside the
input or its leading padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.graph_edit import Emitter


@dataclass
class AxisWindow:
    n_in: int
    kernel: int
    stride: int
    dilation: int
    before: int        # explicit (or auto_pad) padding
    after: int
    n_out: int

    @property
    def span(self) -> int:
        return (self.kernel - 1) * self.dilation + 1

    @property
    def read_after(self) -> int:
        """Cells the windows read past the input's end (may exceed ``after`` in ceil mode,
        or be negative when the last cells are never read)."""
        return (self.n_out - 1) * self.stride + self.span - self.n_in - self.before

    def counts(self, include_pad: bool) -> np.ndarray:
        """Cells each output's window counts for an average."""
        lo, hi = (-self.before, self.n_in + self.after) if include_pad else (0, self.n_in)
        pos = (np.arange(self.n_out)[:, None] * self.stride - self.before
               + np.arange(self.kernel)[None, :] * self.dilation)
        return ((pos >= lo) & (pos < hi)).sum(axis=1)


def _ints(node: ir.Node, name: str, default):
    a = node.attributes.get(name)
    return list(a.value) if a is not None else default


def pool_geometry(node: ir.Node) -> Union[List[AxisWindow], str]:
    """Per spatial axis: the window and the output size ONNX gives (static dims needed)."""
    x = node.inputs[0]
    if x.shape is None or len(x.shape) < 3:
        return "the input rank is unknown or below 3"
    spatial = list(x.shape)[2:]
    if any(not isinstance(d, int) for d in spatial):
        return "spatial dims must be known at conversion time"
    n = len(spatial)
    kernel = _ints(node, "kernel_shape", None)
    if kernel is None:
        return "kernel_shape is missing"
    strides = _ints(node, "strides", [1] * n) or [1] * n
    dil = _ints(node, "dilations", [1] * n) or [1] * n
    pads = _ints(node, "pads", [0] * 2 * n) or [0] * 2 * n
    ceil = bool(node.attributes.get_int("ceil_mode", 0))
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    out = []
    for i in range(n):
        span = (kernel[i] - 1) * dil[i] + 1
        b, a = pads[i], pads[i + n]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-spatial[i] // strides[i])
            total = max((o - 1) * strides[i] + span - spatial[i], 0)
            small, big = total // 2, total - total // 2
            b, a = (small, big) if auto == "SAME_UPPER" else (big, small)
        elif auto == "VALID":
            b = a = 0
        size = (spatial[i] + b + a - span) / strides[i] + 1
        if ceil and auto in ("NOTSET", ""):
            o = int(np.ceil(size))
            if (o - 1) * strides[i] >= spatial[i] + b:
                o -= 1
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-spatial[i] // strides[i])
        else:
            o = int(np.floor(size))
        if o < 1:
            return "the pool's output would be empty"
        out.append(AxisWindow(spatial[i], kernel[i], strides[i], dil[i], b, a, o))
    return out


def _wants_indices(node: ir.Node) -> bool:
    v = node.outputs[1] if len(node.outputs) > 1 else None
    return v is not None and (bool(v.uses()) or v.is_graph_output())


def _refuse(node: ir.Node) -> Optional[str]:
    geo = pool_geometry(node)
    if isinstance(geo, str):
        return geo
    if _wants_indices(node) and not isinstance(node.inputs[0].shape[0], int):
        return "MaxPool's indices need a static batch"
    if node.op_type == "LpPool" and node.attributes.get_int("p", 2) < 1:
        return "p must be at least 1"
    return None


def _pool_axis(e: Emitter, x: ir.Value, axis: int, w: AxisWindow, combine: str,
               fill: float) -> ir.Value:
    after = w.read_after
    if w.before or after > 0:
        pads = [0] * (2 * len(x.shape))
        pads[axis], pads[axis + len(x.shape)] = w.before, max(after, 0)
        x = _pad(e, x, pads, fill)
    out = None
    for j in range(w.kernel):
        start = j * w.dilation
        s = e.slice(x, [start], [start + (w.n_out - 1) * w.stride + 1], [axis], [w.stride])
        out = s if out is None else e.op(combine, [out, s])
    return out


def _pad(e: Emitter, x: ir.Value, pads: List[int], fill: float) -> ir.Value:
    if e.opset >= 11:
        return e.op("Pad", [x, e.ints(pads, "pads"), e.like(fill, x)])
    return e.op("Pad", [x], {"pads": pads, "value": float(fill)})


def _lowest(x: ir.Value) -> float:
    return float(np.finfo(x.dtype.numpy()).min)


@decomposition("MaxPool", "per spatial axis: Max of the window's strided Slices of the "
               "(-inf) padded input", refuse=_refuse)
def _max_pool(e: Emitter, node: ir.Node) -> List[Optional[ir.Value]]:
    if _wants_indices(node):
        return _max_pool_with_indices(e, node)
    x = node.inputs[0]
    for i, w in enumerate(pool_geometry(node)):
        x = _pool_axis(e, x, i + 2, w, "Max", _lowest(node.inputs[0]))
    return [x] + [None] * (len(node.outputs) - 1)


def _max_pool_with_indices(e: Emitter, node: ir.Node) -> List[ir.Value]:
    """Values and flattened input indices (row- or column-major by ``storage_order``): a
    running Max over every window offset in row-major order, the index of the first
    strict improvement kept (the reference's: the first maximum wins)."""
    x = node.inputs[0]
    geo = pool_geometry(node)
    shape = list(x.shape)
    n_sp = len(geo)
    pads = [0] * (2 * len(shape))
    for i, w in enumerate(geo):
        pads[i + 2], pads[i + 2 + len(shape)] = w.before, max(w.read_after, 0)
    padded = _pad(e, x, pads, _lowest(x)) if any(pads) else x
    spatial = shape[2:]
    col_major = bool(node.attributes.get_int("storage_order", 0))
    order = list(range(n_sp))[::-1] if col_major else list(range(n_sp))
    strides = {}
    step = 1
    for i in reversed(order):
        strides[i] = step
        step *= spatial[i]
    lead = (np.arange(shape[0] * shape[1], dtype=np.int64) * int(np.prod(spatial))).reshape(
        [shape[0], shape[1]] + [1] * n_sp)
    best = best_idx = None
    for offs in np.ndindex(*[w.kernel for w in geo]):
        starts = [o * w.dilation for o, w in zip(offs, geo)]
        ends = [s + (w.n_out - 1) * w.stride + 1 for s, w in zip(starts, geo)]
        v = e.slice(padded, starts, ends, list(range(2, 2 + n_sp)), [w.stride for w in geo])
        pos = np.zeros([w.n_out for w in geo], np.int64)
        for i, (o, w) in enumerate(zip(offs, geo)):
            coord = np.arange(w.n_out) * w.stride + o * w.dilation - w.before
            pos = pos + np.clip(coord, 0, w.n_in - 1).reshape(
                [-1 if k == i else 1 for k in range(n_sp)]) * strides[i]
        idx = e.ints(lead + pos[None, None])
        if best is None:
            best, best_idx = v, idx
            continue
        better = e.op("Greater", [v, best], dtype=ir.DataType.BOOL)
        best = e.op("Max", [best, v])
        best_idx = e.op("Where", [better, idx, best_idx], dtype=ir.DataType.INT64)
    return [best, best_idx]


def _window_sum(e: Emitter, x: ir.Value, geo: List[AxisWindow]) -> ir.Value:
    for i, w in enumerate(geo):
        x = _pool_axis(e, x, i + 2, w, "Add", 0.0)
    return x


def _divisor(geo: List[AxisWindow], include_pad: bool, dtype) -> np.ndarray:
    """[1, 1, o1, o2, ...]: the cells each window counts (a product of per-axis counts)."""
    count = np.ones(())
    for w in geo:
        count = np.multiply.outer(count, w.counts(include_pad))
    return count.reshape([1, 1] + list(count.shape)).astype(dtype)


@decomposition("AveragePool", "per spatial axis: Add of the window's strided Slices, divided "
               "by the constant count of cells each window counts", refuse=_refuse)
def _average_pool(e: Emitter, node: ir.Node) -> List[ir.Value]:
    geo = pool_geometry(node)
    x = node.inputs[0]
    include = bool(node.attributes.get_int("count_include_pad", 0))
    total = _window_sum(e, x, geo)
    return [e.op("Div", [total, e.const(_divisor(geo, include, x.dtype.numpy()),
                                        x.dtype.numpy(), "count")])]


@decomposition("LpPool", "(per spatial axis Add of strided Slices of |x|^p)^(1/p)",
               refuse=_refuse)
def _lp_pool(e: Emitter, node: ir.Node) -> List[ir.Value]:
    geo = pool_geometry(node)
    x = node.inputs[0]
    p = node.attributes.get_int("p", 2)
    ax = e.op("Abs", [x])
    powered = e.op("Mul", [ax, ax]) if p == 2 else (
        ax if p == 1 else e.op("Pow", [ax, e.like(float(p), x)]))
    total = _window_sum(e, powered, geo)
    if p == 1:
        return [e.op("Identity", [total])]
    if p == 2:
        return [e.op("Sqrt", [total])]
    return [e.op("Pow", [total, e.like(1.0 / p, x)])]
