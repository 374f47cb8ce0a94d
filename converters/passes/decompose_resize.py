"""Resize (every mode) as per-axis Gathers of constant taps, and Resize's arithmetic.

ONNX's Resize is separable: along each resized axis, output ``i`` is a weighted sum
of a few input positions (1 for nearest, 2 for linear, 4 for cubic, more with
antialias). ``axis_taps`` computes those positions and weights at conversion time,
as ONNX's reference does (``onnx.reference.ops.op_resize``: coordinate transform,
the nearest rounding or the interpolation kernel, edge clamping, ``exclude_outside``,
``antialias``, ``tf_crop_and_resize`` extrapolation) in float64; the decomposition
is then ``sum_t Gather(x, idx[:, t], axis) * w[:, t]`` per axis (a single Gather for
nearest), a ``Where`` for extrapolated positions. Exact for every mode, rank and
axis set; the cost is a GATHER (and MUL/ADD per tap) per axis, so a target uses it
only for what its own resize kernels cannot say (the TFLite lowering compares its
kernels' arithmetic with ``axis_taps`` and takes the builtin when they agree).

``parse_resize`` reads a node into a ``ResizeSpec`` (constant scales/sizes/roi,
axes, keep_aspect_ratio_policy) or gives the reason it cannot: sizes and scales
computed at run time are refused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.graph_edit import Emitter


@dataclass
class AxisResize:
    axis: int
    n_in: int
    n_out: int
    scale: float
    roi: Tuple[float, float] = (0.0, 1.0)


@dataclass
class ResizeSpec:
    mode: str                   # nearest | linear | cubic
    coord: str                  # coordinate_transformation_mode
    nearest_mode: str
    cubic_a: float
    exclude_outside: bool
    antialias: bool
    extrapolation: float
    axes: List[AxisResize]      # the axes that change, in the order they are resized
    rank: int


def _attr(node: ir.Node, name: str, default):
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    return v.decode() if isinstance(v, bytes) else v


def _const(node: ir.Node, i: int) -> Optional[np.ndarray]:
    v = node.inputs[i] if len(node.inputs) > i else None
    if v is None or v.const_value is None:
        return None
    return np.asarray(v.const_value.numpy())


def _given(node: ir.Node, i: int) -> bool:
    v = node.inputs[i] if len(node.inputs) > i else None
    return v is not None and not (v.const_value is not None and v.const_value.size == 0)


def _opset(node: ir.Node) -> int:
    from converters.passes.decompose import _opset_of

    return _opset_of(node) or 13


def parse_resize(node: ir.Node) -> Union[ResizeSpec, str]:
    """The node's resize as a ``ResizeSpec``, or the reason it cannot be read statically."""
    x = node.inputs[0]
    if x.shape is None:
        return "the input rank is unknown"
    shape = [d if isinstance(d, int) else None for d in x.shape]
    rank = len(shape)
    opset = _opset(node)
    mode = _attr(node, "mode", "nearest")
    if mode == "bilinear":
        mode = "linear"
    if node.op_type == "Upsample" or opset < 11:
        scales = _const(node, 1)
        if scales is None:
            return "the scales are computed at run time"
        coord, nearest = "asymmetric", "floor"
        if node.op_type == "Resize" and mode == "nearest" and any(s < 1 for s in scales):
            nearest = "ceil"   # Resize-10 downsamples with ceil (ONNX Runtime's "simple" mode)
        sizes, roi = None, None
    else:
        coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr(node, "nearest_mode", "round_prefer_floor")
        scales = _const(node, 2) if _given(node, 2) else None
        sizes = _const(node, 3) if _given(node, 3) else None
        if _given(node, 3) and sizes is None:
            sizes = _static_output_sizes(node)      # sizes are the output's dims
        if (_given(node, 2) and scales is None) or (_given(node, 3) and sizes is None):
            return ("the scales/sizes are computed at run time (run-time sizes are read from "
                    "a static output shape; run-time scales change the source coordinates)")
        if scales is None and sizes is None:
            return "neither scales nor sizes is given"
        roi = _const(node, 1) if _given(node, 1) else None
        if coord == "tf_crop_and_resize" and roi is None:
            return "tf_crop_and_resize needs a constant roi"
    if mode not in ("nearest", "linear", "cubic"):
        return f"unknown mode {mode!r}"
    axes = [a % rank for a in (_attr(node, "axes", None) or range(rank))]
    scale_of, size_of = _scales_and_sizes(node, shape, axes, scales, sizes)
    if isinstance(scale_of, str):
        return scale_of
    out_shape = node.outputs[0].shape
    plan: List[AxisResize] = []
    for k, a in enumerate(axes):
        r = (0.0, 1.0)
        if roi is not None and coord == "tf_crop_and_resize":
            n = len(roi) // 2
            r = (float(roi[k if n == len(axes) else a]), float(roi[n + (k if n == len(axes)
                                                                        else a)]))
        if out_shape is not None and isinstance(out_shape[a], int) and out_shape[a] != size_of[a]:
            return f"the output shape {list(out_shape)} disagrees with the resize's own"
        if shape[a] is None:
            continue                       # a dynamic dim, not resized (checked above)
        if size_of[a] < 1:
            return "an output dim would be empty"
        if math.isclose(scale_of[a], 1.0) and size_of[a] == shape[a] and \
                math.isclose(r[0], 0.0) and math.isclose(r[1], 1.0):
            continue                                        # identity along this axis
        plan.append(AxisResize(a, shape[a], size_of[a], scale_of[a], r))
    return ResizeSpec(mode, coord, nearest, float(_attr(node, "cubic_coeff_a", -0.75)),
                      bool(_attr(node, "exclude_outside", 0)), bool(_attr(node, "antialias", 0)),
                      float(_attr(node, "extrapolation_value", 0.0)), plan, rank)


def _static_output_sizes(node: ir.Node) -> Optional[np.ndarray]:
    """Run-time ``sizes`` read from the output's static shape (all axes, no aspect policy:
    the resized dims are then exactly the output's)."""
    y = node.outputs[0].shape
    if y is None or _attr(node, "axes", None) or \
            _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch" or \
            any(not isinstance(d, int) for d in y):
        return None
    return np.array(list(y), np.int64)


def _scales_and_sizes(node, shape, axes, scales, sizes):
    """Per-axis (float scale, int output size) for every axis, as ONNX's reference has it."""
    rank = len(shape)
    if sizes is not None:
        sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
        if len(sizes) != len(axes):
            return "sizes do not match the axes", None
        full = list(shape)
        for a, s in zip(axes, sizes):
            if shape[a] is None:
                return "a dynamic dim is resized to a fixed size", None
            full[a] = s
        scale = [full[i] / shape[i] if shape[i] else 1.0 for i in range(rank)]
        policy = _attr(node, "keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(scale[a] for a in axes)
            scale = [s if i in axes else 1.0 for i in range(rank)]
            full = [int(s * shape[i] + 0.5) if i in axes else shape[i] for i in range(rank)]
        return scale, full
    scales = [float(s) for s in np.asarray(scales, np.float32).reshape(-1)]
    if len(scales) != len(axes):
        return "scales do not match the axes", None
    scale = [1.0] * rank
    for a, s in zip(axes, scales):
        scale[a] = s
    if any(s <= 0 for s in scale):
        return "scales must be positive", None
    if any(d is None and s != 1.0 for s, d in zip(scale, shape)):
        return "a dynamic dim is resized", None
    return scale, [None if d is None else int(s * d) for s, d in zip(scale, shape)]


# -- the per-axis arithmetic (ONNX's, float64) ---------------------------------------------

def _source_coords(spec: ResizeSpec, ax: AxisResize) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """x_original for every output position, and which are extrapolated."""
    y = np.arange(ax.n_out, dtype=np.float64)
    n_in, scale = ax.n_in, ax.scale
    width = scale * n_in                     # the resized length as a float (the reference's)
    coord, extra = spec.coord, None
    if coord == "align_corners":
        x = np.zeros_like(y) if width == 1 else y * (n_in - 1) / (width - 1)
    elif coord == "asymmetric":
        x = y / scale
    elif coord == "tf_crop_and_resize":
        # the roi is a float32 tensor: its differences and products are float32 (as in ONNX's
        # reference), which decides nearest ties exactly at .5
        start, end = np.float32(ax.roi[0]), np.float32(ax.roi[1])
        span, lead = end - start, np.float64(start * np.float32(n_in - 1))
        x = np.full_like(y, np.float32(span * np.float32(n_in - 1)) / np.float32(2)) \
            if width == 1 else y * np.float64(span) * (n_in - 1) / (width - 1)
        x = x + lead
        extra = (x < 0) | (x > n_in - 1)
    elif coord == "pytorch_half_pixel":
        x = np.full_like(y, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif coord == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif coord == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - ax.n_out / width)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"coordinate_transformation_mode {coord!r}")
    return x, extra


def _cubic(d: np.ndarray, a: float) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _coeffs(spec: ResizeSpec, ratio: np.ndarray, scale: float) -> np.ndarray:
    """[n_out, taps] weights for the window left of x_original (ratio in (0, 1])."""
    if spec.mode == "nearest":
        m = spec.nearest_mode
        right = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
                 "floor": np.zeros_like(ratio, bool), "ceil": np.ones_like(ratio, bool)}[m]
        right = np.where(ratio == 1.0, True, right)
        return np.stack([~right, right], axis=1).astype(np.float64)
    if not spec.antialias or scale >= 1.0:
        if spec.mode == "linear":
            return np.stack([1 - ratio, ratio], axis=1)
        taps = np.array([-1.0, 0.0, 1.0, 2.0])             # floor - 1 .. floor + 2
        return _cubic(taps[None, :] - ratio[:, None], spec.cubic_a)
    s = min(scale, 1.0)
    if spec.mode == "linear":
        start = int(np.floor(-1 / s) + 1)
        taps = np.arange(start, 2 - start)
        c = np.clip(1 - np.abs((taps[None, :] - ratio[:, None]) * s), 0, 1)
    else:
        start = int(np.floor(-2 / s) + 1)
        taps = np.arange(start, 2 - start)
        c = _cubic((taps[None, :] - ratio[:, None]) * s, spec.cubic_a)
    return c / c.sum(axis=1, keepdims=True)


def axis_taps(spec: ResizeSpec, ax: AxisResize
              ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(indices [n_out, taps] into the input axis, weights [n_out, taps], extrapolated
    positions [n_out] or None) of one resized axis, as ONNX's reference computes them."""
    x, extra = _source_coords(spec, ax)
    base = np.floor(x)
    ratio = np.where(x == base, 1.0, x - base)
    c = _coeffs(spec, ratio, ax.scale)
    n = c.shape[1]
    pad = int(np.ceil(n / 2))                  # the reference's edge-padded window choice
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        off = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        off = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = (p + off)[:, None] + np.arange(n)[None, :] - pad
    if spec.exclude_outside:
        c = np.where((idx < 0) | (idx >= ax.n_in), 0.0, c)
        total = c.sum(axis=1, keepdims=True)
        c = c / np.where(total == 0, 1.0, total)
    idx = np.clip(idx, 0, ax.n_in - 1)
    if extra is not None and not extra.any():
        extra = None
    return idx, c, extra


def axis_matrix(spec: ResizeSpec, ax: AxisResize) -> np.ndarray:
    """The axis's resize as a dense [n_out, n_in] matrix (extrapolated rows zero)."""
    idx, c, extra = axis_taps(spec, ax)
    m = np.zeros((ax.n_out, ax.n_in))
    np.add.at(m, (np.repeat(np.arange(ax.n_out), idx.shape[1]), idx.reshape(-1)), c.reshape(-1))
    if extra is not None:
        m[extra] = 0.0
    return m


# -- the decomposition ----------------------------------------------------------------------

def _refuse(node: ir.Node) -> Optional[str]:
    spec = parse_resize(node)
    if isinstance(spec, str):
        return spec
    x = node.inputs[0]
    if x.dtype is not None and x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16):
        return "only float inputs"
    return None


def _merge_taps(idx: np.ndarray, c: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Taps with the same index summed and zero-weight taps dropped: [n_out, taps']."""
    rows = []
    for i, w in zip(idx, c):
        acc: dict = {}
        for j, v in zip(i, w):
            if v != 0.0:
                acc[int(j)] = acc.get(int(j), 0.0) + float(v)
        rows.append(sorted(acc.items()) or [(int(i[0]), 0.0)])
    taps = max(len(r) for r in rows)
    out_i = np.zeros((len(rows), taps), np.int64)
    out_c = np.zeros((len(rows), taps))
    for k, r in enumerate(rows):
        for t, (j, v) in enumerate(r):
            out_i[k, t], out_c[k, t] = j, v
        for t in range(len(r), taps):
            out_i[k, t] = r[0][0]
    return out_i, out_c


def resize_axis(e: Emitter, x: ir.Value, spec: ResizeSpec, ax: AxisResize) -> ir.Value:
    idx, c, extra = axis_taps(spec, ax)
    idx, c = _merge_taps(idx, c)
    dtype = x.dtype.numpy()
    bshape = [1] * spec.rank
    bshape[ax.axis] = ax.n_out
    out = None
    for t in range(idx.shape[1]):
        g = e.op("Gather", [x, e.ints(idx[:, t])], {"axis": ax.axis})
        if not np.all(c[:, t] == 1.0):
            g = e.op("Mul", [g, e.const(c[:, t].reshape(bshape).astype(dtype), dtype, "w")])
        out = g if out is None else e.op("Add", [out, g])
    if extra is not None:
        out = e.op("Where", [e.const(extra.reshape(bshape), np.bool_, "extrapolated"),
                             e.like(spec.extrapolation, x), out], like=out)
    return out


@decomposition("Resize", "per resized axis: sum of Gather(x, taps) * weights (ONNX's "
               "coordinate transform and kernel, computed at conversion)", refuse=_refuse)
def _resize(e: Emitter, node: ir.Node) -> List[ir.Value]:
    spec = parse_resize(node)
    x = node.inputs[0]
    for ax in spec.axes:
        x = resize_axis(e, x, spec, ax)
    return [x if x is not node.inputs[0] else e.op("Identity", [x])]


@decomposition("Upsample", "per resized axis: Gather(x, taps) (* weights)", refuse=_refuse)
def _upsample(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return _resize(e, node)
