"""GridSample and AffineGrid written as arithmetic, Gather and MatMul.

GridSample (2-D and volumetric; nearest, linear, cubic; zeros, border and reflection
padding; both ``align_corners``) follows ONNX's reference
(``onnx.reference.ops.op_grid_sample``) step by step:

1. each grid component is denormalized to a source coordinate of its axis
   (``grid[..., 0]`` is the last spatial axis);
2. nearest rounds it half to even; a coordinate outside ``[lo, hi]`` (the pixel
   borders, or the centres with ``align_corners``) is clamped to ``[0, L - 1]``
   (border) or reflected into ``[lo, hi]`` (reflection);
3. the taps (``floor``..``floor + 1`` for linear, ``floor - 1``..``floor + 2`` with
   Keys' ``a = -0.75`` for cubic) read the input through the padding rule: zero outside
   (zeros), the clamped index (border), the reflected index (reflection);
4. every combination of taps over the axes is one Gather of ``[N * prod(S), C]`` rows at
   ``n * prod(S) + sum(i_k * stride_k)``, weighted by the product of the axes' weights.

The coordinate arithmetic is plain ops on the grid, so a grid computed at run time
(optical flow, deformable sampling) converts; a constant grid folds at conversion
time into constant indices and weights, leaving only Gather/Mul/Add on the input.
Reflection uses ``lo + r - |((x - lo) mod 2r) - r|`` with ``r = hi - lo``, the
reference's bounce-until-inside written without a loop.

AffineGrid is ``theta @ base^T`` with the reference's constant base grid.
"""
from __future__ import annotations

import itertools
from typing import List, Optional, Tuple

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.decompose_math import clamp
from converters.passes.graph_edit import Emitter

_MODES = {"bilinear": "linear", "bicubic": "cubic"}


def _static(v: Optional[ir.Value]) -> Optional[List[int]]:
    if v is None or v.shape is None or any(not isinstance(d, int) for d in v.shape):
        return None
    return list(v.shape)


def _refuse_grid_sample(node: ir.Node) -> Optional[str]:
    x, grid = _static(node.inputs[0]), _static(node.inputs[1])
    if x is None or grid is None:
        return "the input and the grid need static shapes"
    if len(x) not in (4, 5):
        return f"only 2-D and 3-D sampling (input rank {len(x)})"
    if grid[-1] != len(x) - 2:
        return "the grid's last dim must equal the number of spatial axes"
    mode = node.attributes.get_string("mode", "linear")
    if _MODES.get(mode, mode) not in ("nearest", "linear", "cubic"):
        return f"mode {mode!r}"
    return None


def _reflect(e: Emitter, x: ir.Value, lo: float, hi: float) -> ir.Value:
    span = hi - lo
    if span <= 0:
        return e.op("Mul", [x, e.like(0.0, x)])
    t = e.op("Sub", [x, e.like(lo, x)])
    period = e.like(2 * span, x)
    m = e.op("Sub", [t, e.op("Mul", [e.op("Floor", [e.op("Div", [t, period])]), period])])
    bounce = e.op("Abs", [e.op("Sub", [m, e.like(span, x)])])
    return e.op("Sub", [e.like(lo + span, x), bounce])


def _outside(e: Emitter, x: ir.Value, lo: float, hi: float) -> ir.Value:
    below = e.op("Greater", [e.like(lo, x), x], dtype=ir.DataType.BOOL)
    above = e.op("Greater", [x, e.like(hi, x)], dtype=ir.DataType.BOOL)
    return e.op("Or", [below, above])


def _cubic_weights(e: Emitter, f: ir.Value) -> List[ir.Value]:
    """Keys' cubic (a = -0.75) weights of taps floor - 1 .. floor + 2 at fraction ``f``."""
    a = -0.75
    out = []
    for off in (-1.0, 0.0, 1.0, 2.0):
        d = e.op("Abs", [e.op("Sub", [e.like(off, f), f])])        # |tap - x|
        near = e.op("Add", [e.op("Mul", [e.op("Mul", [
            e.op("Sub", [e.op("Mul", [d, e.like(a + 2, f)]), e.like(a + 3, f)]), d]), d]),
            e.like(1.0, f)])
        far = e.op("Sub", [e.op("Mul", [e.op("Add", [e.op("Mul", [
            e.op("Sub", [e.op("Mul", [d, e.like(a, f)]), e.like(5 * a, f)]), d]),
            e.like(8 * a, f)]), d]), e.like(4 * a, f)])
        out.append(e.op("Where", [e.op("Greater", [d, e.like(1.0, f)], dtype=ir.DataType.BOOL),
                                  far, near], like=f))
    return out


def _axis_taps(e: Emitter, g: ir.Value, length: int, mode: str, padding: str,
               align: bool) -> List[Tuple[ir.Value, Optional[ir.Value]]]:
    """[(int64 index into the axis, weight or None)] for one axis of the grid."""
    if align:
        x = e.op("Mul", [e.op("Add", [g, e.like(1.0, g)]), e.like((length - 1) / 2.0, g)])
    else:
        x = e.op("Div", [e.op("Sub", [e.op("Mul", [e.op("Add", [g, e.like(1.0, g)]),
                                                   e.like(float(length), g)]),
                                      e.like(1.0, g)]), e.like(2.0, g)])
    return pixel_taps(e, x, length, mode, padding, align)


def pixel_taps(e: Emitter, x: ir.Value, length: int, mode: str, padding: str,
               align: bool) -> List[Tuple[ir.Value, Optional[ir.Value]]]:
    """[(int64 index, weight or None)] reading one axis at pixel coordinates ``x``."""
    g = x
    lo, hi = (0.0, length - 1.0) if align else (-0.5, length - 0.5)
    if mode == "nearest":
        x = e.op("Round", [x])
    if padding == "border":
        x = e.op("Where", [_outside(e, x, lo, hi), clamp(e, x, 0.0, length - 1.0), x], like=x)
    elif padding == "reflection":
        x = e.op("Where", [_outside(e, x, lo, hi), _reflect(e, x, lo, hi), x], like=x)
    if mode == "nearest":
        taps = [(x, None)]                     # an integer-valued position
    else:
        base = e.op("Floor", [x])
        f = e.op("Sub", [x, base])
        if mode == "linear":
            offsets, weights = (0.0, 1.0), [e.op("Sub", [e.like(1.0, f), f]), f]
        else:
            offsets, weights = (-1.0, 0.0, 1.0, 2.0), _cubic_weights(e, f)
        taps = [(e.op("Add", [base, e.like(o, base)]), w) for o, w in zip(offsets, weights)]
    out = []
    for pos, w in taps:              # read through the padding rule (positions are integers)
        if padding == "zeros":
            valid = e.op("Not", [_outside(e, pos, 0.0, length - 1.0)])
            mask = e.op("Cast", [valid], {"to": int(g.dtype)}, dtype=g.dtype)
            w = mask if w is None else e.op("Mul", [w, mask])
            pos = clamp(e, pos, 0.0, length - 1.0)
        elif padding == "border":
            pos = clamp(e, pos, 0.0, length - 1.0)
        else:
            pos = clamp(e, _reflect(e, pos, lo, hi), 0.0, length - 1.0)
        idx = e.op("Cast", [pos], {"to": int(ir.DataType.INT64)}, dtype=ir.DataType.INT64)
        out.append((idx, w))
    return out


def sample_rows(e: Emitter, rows: ir.Value, per_axis, strides: List[int],
                batch: ir.Value, channel_axis: int) -> ir.Value:
    """Sum over every combination of the axes' taps of ``Gather(rows, flat index)`` times
    the taps' weight product (``rows``: [N * prod(S), C]; the result's last axis is C)."""
    total = None
    for combo in itertools.product(*per_axis):
        flat, weight = batch, None
        for k, (idx, w) in enumerate(combo):
            term = idx if strides[k] == 1 else e.op("Mul", [idx, e.ints(np.int64(strides[k]))])
            flat = e.op("Add", [flat, term])
            weight = w if weight is None else (weight if w is None else e.op("Mul", [weight, w]))
        got = e.op("Gather", [rows, flat], {"axis": 0})
        if weight is not None:
            got = e.op("Mul", [got, e.unsqueeze(weight, [channel_axis])])
        total = got if total is None else e.op("Add", [total, got])
    return total


@decomposition("GridSample", "Gather of the input at the grid's source positions (taps per "
               "axis, padding by mask/clamp/reflection), weighted by the interpolation kernel",
               refuse=_refuse_grid_sample, opsets=(16, None))
def _grid_sample(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, grid = node.inputs[0], node.inputs[1]
    a = node.attributes
    mode = a.get_string("mode", "linear" if e.opset >= 20 else "bilinear")
    mode = _MODES.get(mode, mode)
    padding = a.get_string("padding_mode", "zeros")
    align = bool(a.get_int("align_corners", 0))
    shape, gshape = _static(x), _static(grid)
    n, c, spatial = shape[0], shape[1], shape[2:]
    d = len(spatial)
    per_axis = []
    for k in range(d):           # grid[..., 0] is the last spatial axis
        comp = e.op("Gather", [grid, e.ints(np.int64(d - 1 - k))], {"axis": len(gshape) - 1})
        per_axis.append(_axis_taps(e, comp, spatial[k], mode, padding, align))
    strides = [int(np.prod(spatial[k + 1:])) for k in range(d)]
    rows = e.reshape(e.transpose(x, [0] + list(range(2, 2 + d)) + [1]),
                     [n * int(np.prod(spatial)), c])
    batch = e.ints((np.arange(n, dtype=np.int64) * int(np.prod(spatial))).reshape(
        [n] + [1] * d))
    total = sample_rows(e, rows, per_axis, strides, batch, d + 1)
    return [e.transpose(total, [0, d + 1] + list(range(1, d + 1)))]


def _refuse_affine(node: ir.Node) -> Optional[str]:
    size = node.inputs[1].const_value if len(node.inputs) > 1 else None
    if size is None:
        return "the output size must be constant"
    if _static(node.inputs[0]) is None:
        return "theta needs a static shape"
    if np.asarray(size.numpy()).size not in (4, 5):
        return "only 2-D and 3-D grids"
    return None


def _base_axis(length: int, align: bool) -> np.ndarray:
    if align:
        return np.arange(-1, 1 + 0.0001, 2.0 / (length - 1)) if length > 1 else np.array([-1.0])
    step = 2.0 / length
    return np.arange(-1 + step / 2, 1, step)


@decomposition("AffineGrid", "theta @ [x, y(, z), 1]^T over the normalized base grid",
               refuse=_refuse_affine, opsets=(20, None))
def _affine_grid(e: Emitter, node: ir.Node) -> List[ir.Value]:
    theta = node.inputs[0]
    size = [int(s) for s in np.asarray(node.inputs[1].const_value.numpy()).reshape(-1)]
    align = bool(node.attributes.get_int("align_corners", 0))
    spatial = size[2:]
    axes = np.meshgrid(*[_base_axis(s, align) for s in spatial], indexing="ij")
    comps = [a.reshape(-1) for a in reversed(axes)] + [np.ones(int(np.prod(spatial)))]
    base_t = np.stack(comps, axis=0).astype(theta.dtype.numpy())      # [D + 1, prod(S)]
    grid = e.op("MatMul", [theta, e.const(base_t, base_t.dtype, "base_grid")])  # [N, D, P]
    grid = e.transpose(grid, [0, 2, 1])
    return [e.reshape(grid, [size[0]] + spatial + [len(spatial)])]


def _refuse_deform(node: ir.Node) -> Optional[str]:
    x, w, off = (_static(node.inputs[i]) for i in range(3))
    if x is None or w is None or off is None:
        return "input, weight and offset need static shapes"
    if len(x) != 4:
        return "only 2-D deformable convolution"
    if node.inputs[1].const_value is None:
        return "the weight must be constant"
    return None


@decomposition("DeformConv", "bilinear samples at the offset kernel taps (zeros outside, as "
               "GridSample), times the mask, contracted with the weight by a MatMul",
               refuse=_refuse_deform, opsets=(19, None))
def _deform_conv(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, offset = node.inputs[0], node.inputs[2]
    bias = node.inputs[3] if len(node.inputs) > 3 else None
    mask = node.inputs[4] if len(node.inputs) > 4 else None
    n, c, h, wd = _static(x)
    weight = np.asarray(node.inputs[1].const_value.numpy())
    oc, cpg, kh, kw = weight.shape
    a = node.attributes
    group, og = a.get_int("group", 1), a.get_int("offset_group", 1)
    sh, sw = list(a.get_ints("strides", [1, 1]))
    dh, dw = list(a.get_ints("dilations", [1, 1]))
    pads = list(a.get_ints("pads", [0, 0, 0, 0]))
    oh, ow = _static(offset)[2:]
    k = kh * kw
    off = e.reshape(offset, [n, og, k, 2, oh, ow])
    msk = e.reshape(mask, [n, og, k, oh, ow]) if mask is not None else None
    base_h = (np.arange(oh) * sh - pads[0])[None, :, None] + \
        (np.repeat(np.arange(kh), kw) * dh)[:, None, None]              # [K, oH, 1]
    base_w = (np.arange(ow) * sw - pads[1])[None, None, :] + \
        (np.tile(np.arange(kw), kh) * dw)[:, None, None]                # [K, 1, oW]
    dtype = x.dtype.numpy()
    batch = e.ints((np.arange(n, dtype=np.int64) * h * wd).reshape(n, 1, 1, 1))
    per_group = []
    cg = c // og
    for g in range(og):
        part = e.op("Gather", [off, e.ints(np.int64(g))], {"axis": 1})    # [N, K, 2, oH, oW]
        yy = e.op("Add", [e.op("Gather", [part, e.ints(np.int64(0))], {"axis": 2}),
                          e.const(base_h.astype(dtype), dtype)])
        xx = e.op("Add", [e.op("Gather", [part, e.ints(np.int64(1))], {"axis": 2}),
                          e.const(base_w.astype(dtype), dtype)])
        taps = [pixel_taps(e, yy, h, "linear", "zeros", True),
                pixel_taps(e, xx, wd, "linear", "zeros", True)]
        xs = e.slice(x, [g * cg], [(g + 1) * cg], [1]) if og > 1 else x
        rows = e.reshape(e.transpose(xs, [0, 2, 3, 1]), [n * h * wd, cg])
        vals = sample_rows(e, rows, taps, [wd, 1], batch, 4)          # [N, K, oH, oW, Cg]
        if msk is not None:
            m = e.op("Gather", [msk, e.ints(np.int64(g))], {"axis": 1})
            vals = e.op("Mul", [vals, e.unsqueeze(m, [4])])
        per_group.append(vals)
    vals = e.concat(per_group, 4)                                      # [N, K, oH, oW, C]
    cols = e.reshape(e.transpose(vals, [0, 2, 3, 4, 1]), [n, oh * ow, c * k])
    dense = np.zeros((oc, c, k), dtype)                                # groups block-diagonal
    opg = oc // group
    for gi in range(group):
        dense[gi * opg:(gi + 1) * opg, gi * cpg:(gi + 1) * cpg] = \
            weight[gi * opg:(gi + 1) * opg].reshape(opg, cpg, k)
    y = e.op("MatMul", [cols, e.const(dense.reshape(oc, c * k).T.copy(), dtype, "weight")])
    if bias is not None:
        y = e.op("Add", [y, bias])
    return [e.reshape(e.transpose(y, [0, 2, 1]), [n, oc, oh, ow])]
