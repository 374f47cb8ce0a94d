"""Resize / Upsample -> RESIZE_NEAREST_NEIGHBOR or RESIZE_BILINEAR on NHWC, when LiteRT's
kernel computes exactly what ONNX does; every other form is decomposed.

ONNX describes a resize by mode, coordinate transformation, nearest rounding and
scales or sizes; TFLite by two flags (``align_corners``, ``half_pixel_centers``) and
the output size. Rather than a table of pairs that "agree", the check computes both
sides' arithmetic per axis at conversion time and compares them:

* ONNX's: ``converters.passes.decompose_resize.axis_matrix`` (the reference's
  coordinate transform and kernel, float64);
* LiteRT's: ``_tflite_matrix`` below, transcribed from its reference kernels
  (``reference_ops::ResizeNearestNeighbor``/``GetNearestNeighbor`` and
  ``ResizeBilinear``/``ComputeInterpolationValues``; for nearest without flags also the
  optimized kernel's 16.16 fixed point, which 8-bit data and RISC-V builds run, and
  which must agree) in float32, as they run: scale =
  ``in / out`` (``(in - 1) / (out - 1)`` with align_corners), nearest index =
  ``floor((i + offset) * scale)`` (``round`` half away from zero with align_corners,
  clamped to ``[0, in - 1]``), bilinear weights from ``(i + 0.5) * scale - 0.5`` with
  half-pixel centers.

The builtin is used with the first flag pair whose matrices equal ONNX's on both
spatial axes (nearest: the same index everywhere; bilinear: weights within 1e-6).
So asymmetric/floor, align_corners/round_prefer_ceil, half_pixel/round_prefer_ceil,
linear with any of the three, with sizes, or with scales where ``out / in`` is the
scale, all take the builtin; round_prefer_floor at an exact tie, a downscale by a
scale that is not ``out / in``, cubic, antialias, tf_crop_and_resize and resizes of
other axes are left to the decomposition (``decompose_resize``), which is exact for
every mode.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from converters.passes.decompose_resize import ResizeSpec, axis_matrix, parse_resize
from converters.tflite.registry import lowering
from converters.tflite.schema import options

_FLAGS = ((False, False), (True, False), (False, True))      # (align_corners, half_pixel)
_F32 = np.float32


def _tflite_scale(n_in: int, n_out: int, align: bool) -> np.float32:
    if align and n_out > 1:
        return _F32(n_in - 1) / _F32(n_out - 1)
    return _F32(n_in) / _F32(n_out)


def _tflite_matrix(builtin: str, n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """[n_out, n_in]: what LiteRT's kernel computes along one axis."""
    scale = _tflite_scale(n_in, n_out, align)
    i = np.arange(n_out, dtype=_F32)
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if builtin == "RESIZE_NEAREST_NEIGHBOR":
        v = (i + _F32(0.5 if half else 0.0)) * scale
        idx = (np.sign(v) * np.floor(np.abs(v) + _F32(0.5)) if align else np.floor(v))
        idx = np.minimum(idx.astype(np.int64), n_in - 1)
        if half:
            idx = np.maximum(idx, 0)
        if not align and not half:
            # the optimized kernel (8-bit data, RISC-V vector builds) uses 16.16 fixed point:
            # scale = (in << 16) / out + 1; both must pick ONNX's index
            fixed = np.minimum((rows * ((n_in << 16) // n_out + 1)) >> 16, n_in - 1)
            if not np.array_equal(fixed, idx):
                return np.full((n_out, n_in), np.nan)
        m[rows, idx] = 1.0
        return m
    v = ((i + _F32(0.5)) * scale - _F32(0.5)) if half else i * scale
    lo = np.maximum(np.floor(v).astype(np.int64), 0)
    hi = np.minimum(np.ceil(v).astype(np.int64), n_in - 1)
    frac = (v - lo.astype(_F32)).astype(np.float64)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def native_flags(spec: ResizeSpec) -> Optional[Tuple[str, bool, bool]]:
    """(builtin, align_corners, half_pixel_centers) when a TFLite resize kernel computes
    ``spec`` exactly, else None."""
    if spec.rank != 4 or any(ax.axis not in (2, 3) for ax in spec.axes) or \
            spec.mode == "cubic":
        return None
    builtin = "RESIZE_NEAREST_NEIGHBOR" if spec.mode == "nearest" else "RESIZE_BILINEAR"
    want = [axis_matrix(spec, ax) for ax in spec.axes]
    if not spec.axes:
        return builtin, False, False
    tol = 0.0 if spec.mode == "nearest" else 1e-6
    for align, half in _FLAGS:
        if all(np.allclose(_tflite_matrix(builtin, ax.n_in, ax.n_out, align, half), w,
                           rtol=0, atol=tol) for ax, w in zip(spec.axes, want)):
            return builtin, align, half
    return None


def check_resize(node) -> Optional[str]:
    spec = parse_resize(node)
    if isinstance(spec, str):
        return spec
    if spec.rank != 4 or any(ax.axis not in (2, 3) for ax in spec.axes):
        return "only the H and W axes of an NCHW input are resized by TFLite's kernels"
    if spec.mode == "cubic":
        return "mode='cubic' has no TFLite kernel (nearest and linear do)"
    if native_flags(spec) is None:
        return (f"LiteRT's {spec.mode} resize kernels compute other source positions than "
                f"coordinate_transformation_mode={spec.coord!r}"
                + (f", nearest_mode={spec.nearest_mode!r}" if spec.mode == "nearest" else "")
                + (", antialias=1" if spec.antialias else "")
                + " with these sizes")
    return None


@lowering("Resize", "Upsample", emits=("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"),
          check=check_resize)
def lower_resize(node, ctx) -> None:
    """Resize the stored H, W with the kernel flags whose arithmetic matches ONNX's."""
    builtin, align, half = native_flags(parse_resize(node))
    x = ctx.input(node, 0)
    y = ctx.shape(node.outputs[0])
    size = ctx.const_tensor("resize_size", np.array(y[2:4], dtype=np.int32))
    kind = "ResizeBilinear" if builtin == "RESIZE_BILINEAR" else "ResizeNearestNeighbor"
    ctx.emit(builtin, [x, size], [ctx.output(node)],
             options(kind, alignCorners=align, halfPixelCenters=half))
