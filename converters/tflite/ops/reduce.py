"""Reductions and scans along axes: ReduceMean/Sum/Max/Min/Prod -> MEAN/SUM/REDUCE_MAX/
REDUCE_MIN/REDUCE_PROD, ReduceL2 and ReduceSumSquare via SQUARE, ArgMax/ArgMin ->
ARG_MAX/ARG_MIN, CumSum -> CUMSUM, TopK -> TOPK_V2 (on the stored last axis; int32
indices cast to ONNX's int64). XNNPACK runs neither CUMSUM nor TOPK_V2: they split
the delegated graph, but compute what ONNX does.

Axes are logical and mapped to stored axes; without keepdims the result's layout
is the input's with the reduced dims removed (decided by the layout plan).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.check import ReduceRule
from converters.layout.graph import attr, const_of, is_const, shape_of
from converters.layout.perm import physical_axis
from converters.tflite.registry import lowering
from converters.tflite.schema import options, tensor_type

_REDUCE = {"ReduceMean": "MEAN", "ReduceSum": "SUM", "ReduceMax": "REDUCE_MAX",
           "ReduceMin": "REDUCE_MIN", "ReduceProd": "REDUCE_PROD",
           "ReduceSumSquare": "SUM", "ReduceL2": "SUM"}


def check_reduce(node) -> Optional[str]:
    if ReduceRule.axes(node) is None:
        return "the reduction axes are computed at run time"
    if node.op_type in ("ArgMax", "ArgMin") and attr(node, "select_last_index", 0):
        return "select_last_index=1 has no TFLite equivalent"
    return None


@lowering(*_REDUCE, emits={op: (b,) + {"ReduceSumSquare": ("SQUARE",),
                                        "ReduceL2": ("SQUARE", "SQRT")}.get(op, ())
                            for op, b in _REDUCE.items()}, check=check_reduce)
def lower_reduce(node, ctx) -> None:
    """Reduction over the stored axes; L2 and sum-of-squares square first."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    axes = ReduceRule.axes(node)
    name = node.outputs[0].name
    if not axes:
        ctx.bind(node.outputs[0], x, perm)
        return
    if node.op_type in ("ReduceSumSquare", "ReduceL2"):
        sq = ctx.tmp(f"{name}_sq", ctx.stored_shape(node.inputs[0], perm))
        ctx.emit("SQUARE", [x], [sq])
        x = sq
    axes_t = ctx.const_tensor(f"{name}_axes",
                              np.array(sorted(physical_axis(perm, a) for a in axes), np.int32))
    keep = bool(attr(node, "keepdims", 1))
    if node.op_type == "ReduceL2":
        mid = ctx.tmp(f"{name}_sum", ctx.stored_shape(node.outputs[0]))
        ctx.emit("SUM", [x, axes_t], [mid], options("Reducer", keepDims=keep))
        ctx.emit("SQRT", [mid], [ctx.output(node)])
        return
    ctx.emit(_REDUCE[node.op_type], [x, axes_t], [ctx.output(node)],
             options("Reducer", keepDims=keep))


@lowering("ArgMax", "ArgMin", emits={"ArgMax": ("ARG_MAX", "RESHAPE"),
                                     "ArgMin": ("ARG_MIN", "RESHAPE")}, check=check_reduce)
def lower_arg(node, ctx) -> None:
    """ARG_MAX/ARG_MIN (which drop the axis), reshaped back when keepdims=1."""
    x = ctx.input(node, 0)
    perm = ctx.input_perm(node, 0)
    axis = ReduceRule.axes(node)[0]
    name = node.outputs[0].name
    axis_t = ctx.const_tensor(f"{name}_axis", np.array([physical_axis(perm, axis)], np.int32))
    builtin = "ARG_MAX" if node.op_type == "ArgMax" else "ARG_MIN"
    kind = "ArgMax" if builtin == "ARG_MAX" else "ArgMin"
    opts = options(kind, outputType=tensor_type(np.int64))
    if not attr(node, "keepdims", 1):
        ctx.emit(builtin, [x, axis_t], [ctx.output(node)], opts)
        return
    stored = ctx.stored_shape(node.inputs[0], perm)
    dropped = [d for k, d in enumerate(stored) if k != physical_axis(perm, axis)]
    mid = ctx.tmp(f"{name}_arg", dropped, np.int64)
    ctx.emit(builtin, [x, axis_t], [mid], opts)
    ctx.reshape(mid, ctx.output(node), ctx.stored_shape(node.outputs[0]))


def check_cumsum(node) -> Optional[str]:
    return None if is_const(node.inputs[1]) else "the axis is computed at run time"


@lowering("CumSum", emits=("CUMSUM",), check=check_cumsum)
def lower_cumsum(node, ctx) -> None:
    """CUMSUM on the stored position of the axis (exclusive and reverse as ONNX's)."""
    x = ctx.input(node, 0)
    axis = int(np.asarray(ctx.const(node.inputs[1])).reshape(-1)[0])
    j = physical_axis(ctx.input_perm(node, 0), axis)
    ctx.emit("CUMSUM", [x, ctx.const_tensor(f"{node.outputs[0].name}_axis",
                                            np.array(j, np.int32))],
             [ctx.output(node)], options("Cumsum", exclusive=bool(attr(node, "exclusive", 0)),
                                         reverse=bool(attr(node, "reverse", 0))))


def check_topk(node) -> Optional[str]:
    k = const_of(node.inputs[1])
    if k is None:
        return "k is computed at run time"
    x = shape_of(node.inputs[0])
    axis = int(attr(node, "axis", -1))
    if x is None or x[axis] is None:
        return "the size of the top-k axis must be known at conversion time"
    return None


@lowering("TopK", emits=("TOPK_V2", "NEG", "CAST"), check=check_topk)
def lower_topk(node, ctx) -> None:
    """TOPK_V2 over the stored last axis (the plan puts the ONNX axis there); smallest-k
    by negating; indices cast to int64."""
    x = ctx.input(node, 0)
    stored = ctx.stored_shape(node.inputs[0], ctx.input_perm(node, 0))
    name = node.outputs[0].name
    k = int(np.asarray(ctx.const(node.inputs[1])).reshape(-1)[0])
    largest = bool(attr(node, "largest", 1))
    out_shape = stored[:-1] + [k]
    if not largest:
        neg = ctx.tmp(f"{name}_neg", stored)
        ctx.emit("NEG", [x], [neg])
        x = neg
    values = ctx.output(node, 0) if largest else ctx.tmp(f"{name}_negtop", out_shape)
    idx_v = node.outputs[1] if len(node.outputs) > 1 else None
    want_idx = idx_v is not None and (bool(idx_v.uses()) or idx_v.is_graph_output())
    idx32 = ctx.tmp(f"{name}_idx32", out_shape, np.int32)
    ctx.emit("TOPK_V2", [x, ctx.const_tensor(f"{name}_k", np.array(k, np.int32))],
             [values, idx32])
    if not largest:
        ctx.emit("NEG", [values], [ctx.output(node, 0)])
    if want_idx:
        out = ctx.output(node, 1)
        ctx.emit("CAST", [idx32], [out], options("Cast", inDataType=tensor_type(np.int32),
                                                 outDataType=ctx.sg.dtype_code(out)))
