"""MNN rewrites of windowed ops (see ``rewrites.py``): ConvTranspose 1-D as 2-D, pools
with ``auto_pad``/``ceil_mode`` as explicit pads, pools MNN cannot run (dilated, LpPool)
as strided Slices, Resize's ``axes``/``keep_aspect_ratio_policy`` as full static sizes.
Measured on MNN 3.6 with ONNX's node tests and tests/converters/test_mnn_rewrites.py."""
from __future__ import annotations

import itertools
from typing import List, Optional

import numpy as np
import onnx_ir as ir

from converters.mnn.rewrites import _i64, _unsqueeze, rewrite, static_shape
from converters.passes.graph_edit import Emitter


def _attr_int(node: ir.Node, name: str, default: int) -> int:
    return node.attributes.get_int(name, default)


# -- ConvTranspose 1-D as 2-D --------------------------------------------------------------

def _conv_t_1d(node: ir.Node) -> bool:
    x, w = node.inputs[0], node.inputs[1]
    return x.shape is not None and len(x.shape) == 3 and w.shape is not None


def _lift(values: List[int], fill: int) -> List[int]:
    return [fill] + list(values)


@rewrite("ConvTranspose", "Squeeze(ConvTranspose 2-D of Unsqueeze(x, 2), 2) (1-D)",
         check=_conv_t_1d)
def _conv_transpose_1d(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    x4 = _unsqueeze(e, x, [2], [x.shape[0], x.shape[1], 1, x.shape[2]])
    w4 = _unsqueeze(e, w, [2], [w.shape[0], w.shape[1], 1, w.shape[2]])
    attrs = {}
    for a in node.attributes.values():
        v = a.value
        if a.name in ("kernel_shape", "output_shape"):
            v = _lift(list(v), 1)
        elif a.name in ("strides", "dilations"):
            v = _lift(list(v), 1)
        elif a.name == "output_padding":
            v = _lift(list(v), 0)
        elif a.name == "pads":
            v = [0, v[0], 0, v[1]]
        attrs[a.name] = v
    y_shape = [out.shape[0], out.shape[1], 1, out.shape[2]] if out.shape is not None else None
    y = e.op("ConvTranspose", [x4, w4] + list(node.inputs[2:]), attrs, shape=y_shape, like=out)
    if e.opset >= 13:
        return [e.op("Squeeze", [y, _i64(e, [2], "axes")], like=out)]
    return [e.op("Squeeze", [y], {"axes": [2]}, like=out)]


# -- pools: auto_pad SAME and ceil_mode as explicit pads -----------------------------------

def _pool_pads(node: ir.Node) -> Optional[List[int]]:
    """Explicit begin+end pads giving the node's own (static) output size with floor
    rounding, or None when that cannot be done exactly."""
    x, out = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if x is None or out is None:
        return None
    k = list(node.attributes.get_ints("kernel_shape"))
    nd = len(k)
    s = list(node.attributes.get_ints("strides", [1] * nd) or [1] * nd)
    d = list(node.attributes.get_ints("dilations", [1] * nd) or [1] * nd)
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    pads = list(node.attributes.get_ints("pads", [0] * 2 * nd) or [0] * 2 * nd)
    begin, end = pads[:nd], pads[nd:]
    for i in range(nd):
        length, eff = x[2 + i], (k[i] - 1) * d[i] + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            total = max((out[2 + i] - 1) * s[i] + eff - length, 0)
            small, big = total // 2, total - total // 2
            begin[i], end[i] = (small, big) if auto == "SAME_UPPER" else (big, small)
            continue
        need = (out[2 + i] - 1) * s[i] + eff - (length + begin[i] + end[i])
        if need > 0:          # ceil_mode's last window: pad the end explicitly
            end[i] += need
        floor_out = (length + begin[i] + end[i] - eff) // s[i] + 1
        if floor_out != out[2 + i]:
            return None
    return begin + end


def _pool_rewritable(node: ir.Node) -> bool:
    if any(v != 1 for v in node.attributes.get_ints("dilations", []) or []):
        return False
    if len(node.outputs) > 1 and node.outputs[1] is not None and (
            node.outputs[1].uses() or node.outputs[1].is_graph_output()):
        return False
    pads = _pool_pads(node)
    if pads is None:
        return False
    if node.op_type == "AveragePool" and _attr_int(node, "count_include_pad", 0) == 1:
        # pads beyond the declared ones would be counted in the average
        old = list(node.attributes.get_ints("pads", []) or [0] * len(pads))
        if node.attributes.get_string("auto_pad", "NOTSET") == "NOTSET" and pads != old:
            return False
    return True


def _pool_plain(e: Emitter, node: ir.Node) -> List[ir.Value]:
    attrs = {a.name: a.value for a in node.attributes.values()
             if a.name not in ("auto_pad", "ceil_mode", "pads")}
    attrs["pads"] = _pool_pads(node)
    nd = len(node.attributes.get_ints("kernel_shape"))
    attrs.setdefault("strides", [1] * nd)
    return [e.op(node.op_type, [node.inputs[0]], attrs, like=node.outputs[0])]


# -- pools MNN cannot run (dilated, LpPool): one strided Slice per kernel offset ------------

MAX_WINDOW = 64         # kernel offsets (Slices) a pool may be written as


def _window(node: ir.Node):
    """(kernel, strides, dilations, begin pads, end pads, output spatial dims)."""
    k = list(node.attributes.get_ints("kernel_shape"))
    nd = len(k)
    s = list(node.attributes.get_ints("strides", []) or [1] * nd)
    d = list(node.attributes.get_ints("dilations", []) or [1] * nd)
    pads = _pool_pads(node)
    return k, s, d, pads[:nd], pads[nd:], static_shape(node.outputs[0])[2:]


def _slices_ok(node: ir.Node) -> bool:
    if len(node.outputs) > 1 and node.outputs[1] is not None and (
            node.outputs[1].uses() or node.outputs[1].is_graph_output()):
        return False
    k = list(node.attributes.get_ints("kernel_shape", []) or [])
    return bool(k) and int(np.prod(k)) <= MAX_WINDOW and _pool_pads(node) is not None \
        and static_shape(node.inputs[0]) is not None


def _pool_slices(e: Emitter, node: ir.Node) -> List[ir.Value]:
    """The pool as a Max / Sum over one strided Slice of the padded input per kernel
    offset; AveragePool divides by each window's count of counted elements (declared pads
    when count_include_pad, never the ceil_mode extension), LpPool takes the p-th root."""
    x, out = node.inputs[0], node.outputs[0]
    shape = static_shape(x)
    k, s, d, begin, end, out_dims = _window(node)
    nd = len(k)
    op = node.op_type
    declared = list(node.attributes.get_ints("pads", []) or [0] * 2 * nd)
    if node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
        declared = begin + end
    fill = float(np.finfo(np.float32).min) if op == "MaxPool" else 0.0
    src = x
    if any(begin) or any(end):
        pads = [0, 0] + begin + [0, 0] + end
        padded = [shape[0], shape[1]] + [shape[2 + i] + begin[i] + end[i] for i in range(nd)]
        src = e.op("Pad", [x, e.const(np.array(pads, np.int64), np.int64, "pads"),
                           e.like(fill, x)], {"mode": "constant"}, shape=padded)
    p = _attr_int(node, "p", 2)
    if op == "LpPool":
        src = e.op("Mul", [src, src]) if p == 2 else e.op("Pow", [e.op("Abs", [src]),
                                                                  e.like(float(p), x)])
    axes = list(range(2, 2 + nd))
    slice_shape = shape[:2] + list(out_dims)
    acc = None
    for offset in itertools.product(*[range(kk) for kk in k]):
        starts = [offset[i] * d[i] for i in range(nd)]
        ends = [starts[i] + (out_dims[i] - 1) * s[i] + 1 for i in range(nd)]
        part = e.op("Slice", [src, _i64(e, starts, "starts"), _i64(e, ends, "ends"),
                              _i64(e, axes, "axes"), _i64(e, s, "steps")], shape=slice_shape)
        acc = part if acc is None else e.op("Max" if op == "MaxPool" else "Add", [acc, part],
                                            shape=slice_shape)
    if op == "MaxPool":
        return [e.op("Identity", [acc], like=out)]
    if op == "LpPool":
        root = e.op("Sqrt", [acc]) if p == 2 else e.op("Pow", [acc, e.like(1.0 / p, x)])
        return [e.op("Identity", [root], like=out)]
    # AveragePool: each output's count of counted elements, known at conversion time
    include = _attr_int(node, "count_include_pad", 0) == 1
    mask = np.zeros([shape[2 + i] + begin[i] + end[i] for i in range(nd)], np.float32)
    mask[tuple(slice(begin[i] - (declared[i] if include else 0),
                     begin[i] + shape[2 + i] + (declared[nd + i] if include else 0))
               for i in range(nd))] = 1
    count = np.zeros(out_dims, np.float32)
    for offset in itertools.product(*[range(kk) for kk in k]):
        idx = tuple(slice(offset[i] * d[i], offset[i] * d[i] + (out_dims[i] - 1) * s[i] + 1,
                          s[i]) for i in range(nd))
        count += mask[idx]
    inv = e.const((1.0 / np.maximum(count, 1)).reshape([1, 1] + list(out_dims)), np.float32,
                  "inv_count")
    return [e.op("Mul", [acc, inv], like=out)]


def _needs_slices(node: ir.Node) -> bool:
    dilated = any(v != 1 for v in node.attributes.get_ints("dilations", []) or [])
    return node.op_type == "LpPool" or dilated or (
        node.op_type == "AveragePool" and not _pool_rewritable(node))


@rewrite("MaxPool", "explicit pads and ceil_mode=0 (auto_pad SAME, ceil_mode); dilated: Max "
                    "over one strided Slice per kernel offset",
         check=lambda n: _slices_ok(n) if _needs_slices(n) else _pool_rewritable(n))
@rewrite("AveragePool", "explicit pads and ceil_mode=0 (auto_pad SAME, ceil_mode); dilated: "
                        "sum over one strided Slice per kernel offset / each window's count",
         check=lambda n: _slices_ok(n) if _needs_slices(n) else _pool_rewritable(n))
@rewrite("LpPool", "(sum over one strided Slice per kernel offset of |x|^p)^(1/p)",
         check=_slices_ok)
def _pool(e: Emitter, node: ir.Node) -> List[ir.Value]:
    if _needs_slices(node):
        return _pool_slices(e, node)
    return _pool_plain(e, node)


# -- Resize: axes and keep_aspect_ratio_policy as full sizes ---------------------------------

def _resize_sizes_static(node: ir.Node) -> bool:
    a = node.attributes
    mode = a.get_string("mode", "nearest")
    coord = a.get_string("coordinate_transformation_mode", "half_pixel")
    if coord in ("tf_crop_and_resize", "half_pixel_symmetric") or a.get_int("antialias", 0):
        return False
    if mode == "nearest" and a.get_string("nearest_mode", "round_prefer_floor") in (
            "ceil", "round_prefer_ceil"):
        return False
    if mode == "cubic":
        return False
    from converters.mnn.wrong_ops import _align_corners_scales
    if _align_corners_scales(node, coord, mode):
        return False
    return static_shape(node.inputs[0]) is not None and static_shape(node.outputs[0]) is not None


@rewrite("Resize", "Resize to the output's full static sizes (axes, keep_aspect_ratio_policy, "
                   "align_corners downsampling by scales)", check=_resize_sizes_static)
def _resize(e: Emitter, node: ir.Node) -> List[ir.Value]:
    out = node.outputs[0]
    attrs = {a.name: a.value for a in node.attributes.values()
             if a.name not in ("axes", "keep_aspect_ratio_policy")}
    sizes = e.const(np.array(static_shape(out), np.int64), np.int64, "sizes")
    return [e.op("Resize", [node.inputs[0], None, None, sizes], attrs, like=out)]
