"""NonMaxSuppression -> NON_MAX_SUPPRESSION_V4 per (batch, class), with ONNX's semantics.

LiteRT's kernel (``reference_ops::NonMaxSuppression``, float) and ONNX's reference
agree on the box encoding (any two diagonal corners ``[y1, x1, y2, x2]``), on degenerate
boxes (zero area or no overlap never suppresses) and on the score filter (strictly
above ``score_threshold``). They differ in two places, both fixed here rather than
refused:

* LiteRT suppresses when ``iou >= iou_threshold``, ONNX when ``iou > iou_threshold``:
  the kernel is given ``nextafter(iou_threshold, +inf)`` (for float IoUs ``iou >
  t`` is ``iou >= nextafter(t)``), so a box exactly at the threshold is kept, as in ONNX;
* LiteRT visits candidates through a ``std::priority_queue`` ordered by score alone,
  so equal scores come out in heap order; ONNX takes the lower box index first. The
  boxes are therefore sorted first by TOPK_V2 (stable: equal values in index order)
  and the kernel sees strictly decreasing stand-in scores (``N - rank``, or -1 for a
  score at or below the threshold) with a threshold of 0, and its selections are
  mapped back through the sort.

``center_point_box=1`` boxes are turned into corners first. Each (batch, class) pair
yields ``[batch, class, box]`` rows cut to the kernel's ``valid_outputs`` by a SLICE
with a run-time size, so the output has ONNX's data-dependent length; LiteRT sizes it
at ``invoke()``. Thresholds and the per-class maximum must be constants.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import attr, const_of, shape_of
from converters.tflite.registry import lowering
from converters.tflite.schema import options, tensor_type

_I32 = np.int32


def _scalar(node, i: int, default):
    if len(node.inputs) <= i or node.inputs[i] is None:
        return default
    c = const_of(node.inputs[i])
    return None if c is None else (c.reshape(-1)[0] if c.size else default)


def check_nms(node) -> Optional[str]:
    boxes, scores = shape_of(node.inputs[0]), shape_of(node.inputs[1])
    if boxes is None or scores is None or any(d is None for d in boxes + scores):
        return "boxes and scores need static shapes"
    for i, what in ((2, "max_output_boxes_per_class"), (3, "iou_threshold"),
                    (4, "score_threshold")):
        if len(node.inputs) > i and node.inputs[i] is not None and \
                const_of(node.inputs[i]) is None:
            return f"{what} must be constant"
    return None


def _corners(ctx, boxes: int, n: int, name: str) -> int:
    """[N, 4] centre boxes [xc, yc, w, h] -> corners [yc - h/2, xc - w/2, yc + h/2, xc + w/2]."""
    half_t = ctx.tmp(f"{name}_half", [n, 2])
    centre = ctx.tmp(f"{name}_centre", [n, 2])
    size = ctx.tmp(f"{name}_size", [n, 2])
    ctx.emit("STRIDED_SLICE", [boxes, ctx.const_tensor("b0", np.array([0, 0], _I32)),
                               ctx.const_tensor("e2", np.array([n, 2], _I32)),
                               ctx.const_tensor("s1", np.array([1, 1], _I32))], [centre],
             options("StridedSlice"))
    ctx.emit("STRIDED_SLICE", [boxes, ctx.const_tensor("b2", np.array([0, 2], _I32)),
                               ctx.const_tensor("e4", np.array([n, 4], _I32)),
                               ctx.const_tensor("s1", np.array([1, 1], _I32))], [size],
             options("StridedSlice"))
    ctx.emit("MUL", [size, ctx.const_tensor("half", np.array(0.5, np.float32))], [half_t],
             options("Mul"))
    lo, hi = ctx.tmp(f"{name}_lo", [n, 2]), ctx.tmp(f"{name}_hi", [n, 2])
    ctx.emit("SUB", [centre, half_t], [lo], options("Sub"))
    ctx.emit("ADD", [centre, half_t], [hi], options("Add"))
    both = ctx.tmp(f"{name}_xyxy", [n, 4])
    ctx.emit("CONCATENATION", [lo, hi], [both], options("Concatenation", axis=1))
    out = ctx.tmp(f"{name}_yxyx", [n, 4])          # [x1, y1, x2, y2] -> [y1, x1, y2, x2]
    ctx.emit("GATHER", [both, ctx.const_tensor("yxyx", np.array([1, 0, 3, 2], _I32))], [out],
             options("Gather", axis=1))
    return out


def _one_class(ctx, node, boxes: int, scores: int, b: int, c: int, n: int, max_out: int,
               iou: float, thr: Optional[float], name: str) -> int:
    """[valid, 3] int32 rows ``[b, c, box]`` for one (batch, class)."""
    tag = f"{name}_b{b}c{c}"
    sorted_s, order = ctx.tmp(f"{tag}_sorted", [n]), ctx.tmp(f"{tag}_order", [n], _I32)
    ctx.emit("TOPK_V2", [scores, ctx.const_tensor(f"{tag}_n", np.array(n, _I32))],
             [sorted_s, order])
    sboxes = ctx.tmp(f"{tag}_boxes", [n, 4])
    ctx.emit("GATHER", [boxes, order], [sboxes], options("Gather", axis=0))
    rank_score = ctx.const_tensor(f"{name}_rank_score", np.arange(n, 0, -1).astype(np.float32))
    if thr is not None:                  # candidates strictly above the threshold keep N - rank
        keep = ctx.tmp(f"{tag}_keep", [n], np.bool_)
        ctx.emit("GREATER", [sorted_s, ctx.const_tensor(f"{tag}_thr", np.array(
            thr, np.float32))], [keep])
        fake = ctx.tmp(f"{tag}_fake", [n])
        ctx.emit("SELECT_V2", [keep, rank_score, ctx.const_tensor(
            "minus_one", np.array(-1.0, np.float32))], [fake])
    else:
        fake = rank_score
    sel, valid = ctx.tmp(f"{tag}_sel", [max_out], _I32), ctx.tmp(f"{tag}_valid", [], _I32)
    iou_k = np.nextafter(np.float32(iou), np.float32(np.inf))
    ctx.emit("NON_MAX_SUPPRESSION_V4", [
        sboxes, fake, ctx.const_tensor(f"{name}_max", np.array(max_out, _I32)),
        ctx.const_tensor(f"{name}_iou", np.array(iou_k, np.float32)),
        ctx.const_tensor("zero_f", np.array(0.0, np.float32))], [sel, valid],
        options("NonMaxSuppressionV4"))
    box = ctx.tmp(f"{tag}_box", [max_out], _I32)
    ctx.emit("GATHER", [order, sel], [box], options("Gather", axis=0))
    col = ctx.tmp(f"{tag}_col", [max_out, 1], _I32)
    ctx.reshape(box, col, [max_out, 1])
    lead = ctx.const_tensor(f"{tag}_bc", np.tile(np.array([[b, c]], _I32), (max_out, 1)))
    rows = ctx.tmp(f"{tag}_rows", [max_out, 3], _I32)
    ctx.emit("CONCATENATION", [lead, col], [rows], options("Concatenation", axis=1))
    valid1 = ctx.tmp(f"{tag}_valid1", [1], _I32)
    ctx.reshape(valid, valid1, [1])
    size = ctx.tmp(f"{tag}_size", [2], _I32)
    ctx.emit("CONCATENATION", [valid1, ctx.const_tensor("three", np.array([3], _I32))],
             [size], options("Concatenation", axis=0))
    out = ctx.tmp(f"{tag}_selected", [None, 3], _I32)
    ctx.emit("SLICE", [rows, ctx.const_tensor("zero2", np.array([0, 0], _I32)), size], [out])
    return out


@lowering("NonMaxSuppression", emits=("NON_MAX_SUPPRESSION_V4", "TOPK_V2", "GATHER", "GATHER_ND",
                                      "SLICE", "CONCATENATION", "GREATER", "SELECT_V2", "CAST"),
          opsets=(10, None), check=check_nms)
def lower_nms(node, ctx) -> None:
    """Per (batch, class): sort (ties by index), NMS on rank scores, rows [b, c, box]."""
    nb, n, _ = shape_of(node.inputs[0])
    nc = shape_of(node.inputs[1])[1]
    name = node.outputs[0].name
    max_out = int(_scalar(node, 2, 0))
    iou = float(_scalar(node, 3, 0.0))
    thr = _scalar(node, 4, None)
    boxes_all, scores_all = ctx.input(node, 0), ctx.input(node, 1)
    parts = []
    for b in range(nb if max_out > 0 else 0):
        boxes = ctx.tmp(f"{name}_boxes{b}", [n, 4])
        ctx.emit("GATHER", [boxes_all, ctx.const_tensor(f"{name}_i{b}", np.array(b, _I32))],
                 [boxes], options("Gather", axis=0))
        if attr(node, "center_point_box", 0):
            boxes = _corners(ctx, boxes, n, f"{name}_b{b}")
        for c in range(nc):
            scores = ctx.tmp(f"{name}_scores{b}_{c}", [n])
            ctx.emit("GATHER_ND", [scores_all, ctx.const_tensor(f"{name}_bc{b}_{c}", np.array(
                [b, c], _I32))], [scores])
            parts.append(_one_class(ctx, node, boxes, scores, b, c, n, min(max_out, n), iou,
                                    None if thr is None else float(thr), name))
    out = ctx.output(node)
    if not parts:                                       # max_output_boxes_per_class = 0
        ctx.emit("SLICE", [ctx.const_tensor(f"{name}_none", np.zeros((1, 3), np.int64)),
                           ctx.const_tensor("zero2", np.array([0, 0], _I32)),
                           ctx.const_tensor("empty_size", np.array([0, 3], _I32))], [out])
        return
    rows = parts[0]
    if len(parts) > 1:
        rows = ctx.tmp(f"{name}_rows", [None, 3], _I32)
        ctx.emit("CONCATENATION", parts, [rows], options("Concatenation", axis=0))
    ctx.emit("CAST", [rows], [out], options("Cast", inDataType=tensor_type(np.int32),
                                            outDataType=tensor_type(np.int64)))
