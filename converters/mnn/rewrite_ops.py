"""The rewrites of ``rewrites.py``: each an ONNX op MNN computes wrongly (see
``support.WRONG``), written as ops it computes right. Measured on MNN 3.6 with
ONNX's node tests (tests/conformance) and tests/converters/test_mnn_rewrites.py."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import onnx_ir as ir

from converters.mnn.rewrites import (const_array, reverse, rewrite, static_shape, _i64,
                                     _unsqueeze)
from converters.passes.graph_edit import Emitter

_BOOL = ir.DataType.BOOL


def _attr_int(node: ir.Node, name: str, default: int) -> int:
    return node.attributes.get_int(name, default)


# -- ArgMax / ArgMin with select_last_index ---------------------------------------------

def _axis_size(node: ir.Node) -> Optional[int]:
    x = node.inputs[0]
    if x.shape is None:
        return None
    axis = _attr_int(node, "axis", 0) % len(x.shape)
    d = x.shape[axis]
    return d if isinstance(d, int) else None


def _last_index(node: ir.Node) -> bool:
    return _attr_int(node, "select_last_index", 0) == 1 and _axis_size(node) is not None


@rewrite(("ArgMax", "ArgMin"), "n-1 - {op}(x reversed on the axis) (select_last_index=1)",
         check=_last_index)
def _arg_last(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, out = node.inputs[0], node.outputs[0]
    axis = _attr_int(node, "axis", 0) % len(x.shape)
    n = _axis_size(node)
    first = e.op(node.op_type, [reverse(e, x, axis, n)],
                 {"axis": axis, "keepdims": _attr_int(node, "keepdims", 1)}, like=out)
    return [e.op("Sub", [_i64(e, n - 1, "last"), first], like=out)]


# -- negative indices -------------------------------------------------------------------

def _normalized(e: Emitter, idx: ir.Value, size: int) -> ir.Value:
    """Indices with negatives counted from the end: idx + size where idx < 0."""
    c = const_array(idx)
    if c is not None:
        return e.const(np.where(c < 0, c + size, c).astype(c.dtype), c.dtype, "idx")
    zero = e.like(0, idx)
    neg = e.op("Greater", [zero, idx], dtype=_BOOL, like=idx)
    return e.op("Where", [neg, e.op("Add", [idx, e.like(size, idx)]), idx], like=idx)


def _may_be_negative(v: ir.Value) -> bool:
    c = const_array(v)
    return c is None or bool((c < 0).any())


def _gather_elements_negative(node: ir.Node) -> bool:
    return _may_be_negative(node.inputs[1]) and _axis_size(node) is not None


@rewrite("GatherElements", "GatherElements(x, where(i < 0, i + n, i))",
         check=_gather_elements_negative)
def _gather_elements(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, idx = node.inputs[0], node.inputs[1]
    axis = _attr_int(node, "axis", 0) % len(x.shape)
    fixed = _normalized(e, idx, _axis_size(node))
    return [e.op("GatherElements", [x, fixed], {"axis": axis}, like=node.outputs[0])]


# -- elementwise ------------------------------------------------------------------------

@rewrite("Round", "half to even: r = floor(x + 0.5), minus 1 on ties with r odd")
def _round(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    r = e.op("Floor", [e.op("Add", [x, e.like(0.5, x)])])
    tie = e.op("Cast", [e.op("Equal", [e.op("Sub", [r, x]), e.like(0.5, x)], dtype=_BOOL)],
               {"to": int(x.dtype)})
    half = e.op("Mul", [r, e.like(0.5, x)])
    odd = e.op("Mul", [e.op("Sub", [half, e.op("Floor", [half])]), e.like(2.0, x)])
    rounded = e.op("Sub", [r, e.op("Mul", [tie, odd])])
    # |x| >= 2^23 is an integer already, and x + 0.5 would round in float32
    big = e.op("Greater", [e.op("Abs", [x]), e.like(2.0 ** 23, x)], dtype=_BOOL)
    return [e.op("Where", [big, x, rounded], like=x)]


@rewrite("Shrink", "x - bias if x > lambd, x + bias if x < -lambd, else 0")
def _shrink(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    lambd = node.attributes.get_float("lambd", 0.5)
    bias = node.attributes.get_float("bias", 0.0)
    above = e.op("Greater", [x, e.like(lambd, x)], dtype=_BOOL)
    below = e.op("Greater", [e.like(-lambd, x), x], dtype=_BOOL)
    low = e.op("Where", [below, e.op("Add", [x, e.like(bias, x)]), e.like(0, x)], like=x)
    return [e.op("Where", [above, e.op("Sub", [x, e.like(bias, x)]), low], like=x)]


def _clip_bounds(node: ir.Node):
    lo = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    hi = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    return lo, hi


def _clip_crossed(node: ir.Node) -> bool:
    lo, hi = _clip_bounds(node)
    return lo is not None and hi is not None and float(lo) > float(hi)


@rewrite("Clip", "min(max(x, lo), hi) (every value is hi when lo > hi)", check=_clip_crossed)
def _clip(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    return [e.op("Min", [e.op("Max", [x, node.inputs[1]]), node.inputs[2]])]


# -- MatMul of two vectors ---------------------------------------------------------------

def _vector_dot(node: ir.Node) -> bool:
    a, b = node.inputs[0], node.inputs[1]
    return a.shape is not None and b.shape is not None and len(a.shape) == 1 \
        and len(b.shape) == 1


def _dot(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a, b = node.inputs[0], node.inputs[1]
    prod = e.op("Mul", [a, b])
    if e.opset >= 13:
        return [e.op("ReduceSum", [prod, _i64(e, [0], "axes")], {"keepdims": 0}, shape=[])]
    return [e.op("ReduceSum", [prod], {"axes": [0], "keepdims": 0}, shape=[])]


# -- OneHot -----------------------------------------------------------------------------

def _onehot_ok(node: ir.Node) -> bool:
    depth = const_array(node.inputs[1])
    return depth is not None and node.inputs[0].shape is not None \
        and const_array(node.inputs[2]) is not None


@rewrite("OneHot", "Where(Unsqueeze(i mod-from-end, axis) == range(depth), on, off)",
         check=_onehot_ok)
def _onehot(e: Emitter, node: ir.Node) -> List[ir.Value]:
    idx, out = node.inputs[0], node.outputs[0]
    depth = int(np.asarray(const_array(node.inputs[1])).reshape(-1)[0])
    values = const_array(node.inputs[2]).reshape(-1)
    rank = len(idx.shape)
    axis = _attr_int(node, "axis", -1) % (rank + 1)
    i = idx
    if idx.dtype != ir.DataType.INT64:   # ONNX casts non-integer indices to int
        i = e.op("Cast", [idx], {"to": int(ir.DataType.INT64)}, dtype=ir.DataType.INT64)
    i = _normalized(e, i, depth)
    shape_i = list(idx.shape)
    shape_i.insert(axis, 1)
    col = _unsqueeze(e, i, [axis], shape_i)
    rng_shape = [1] * (rank + 1)
    rng_shape[axis] = depth
    rng = e.const(np.arange(depth, dtype=np.int64).reshape(rng_shape), np.int64, "range")
    hit = e.op("Equal", [col, rng], dtype=_BOOL, shape=out.shape)
    dt = values.dtype
    on = e.const(np.asarray(values[1], dt), dt, "on")
    off = e.const(np.asarray(values[0], dt), dt, "off")
    return [e.op("Where", [hit, on, off], like=out)]


# -- recurrent ops in reverse -----------------------------------------------------------

_RNN_OUTPUTS = {"LSTM": 3, "GRU": 2, "RNN": 2}


def _reverse_rnn(node: ir.Node) -> bool:
    if node.attributes.get_string("direction", "forward") != "reverse":
        return False
    if len(node.inputs) > 4 and node.inputs[4] is not None:
        return False            # sequence_lens: each batch row reversed over its own length
    x = static_shape(node.inputs[0])
    return x is not None


@rewrite(("LSTM", "GRU", "RNN"),
         "reverse(Y of a forward {op} on x reversed in time) (direction=reverse)",
         check=_reverse_rnn)
def _rnn_reverse(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    layout = _attr_int(node, "layout", 0)
    t_axis = 1 if layout else 0
    steps = static_shape(x)[t_axis]
    xr = reverse(e, x, t_axis, steps)
    attrs = [a for a in node.attributes.values() if a.name != "direction"]
    attrs.append(ir.AttrString("direction", "forward"))
    fwd = ir.Node(node.domain, node.op_type, [xr] + list(node.inputs[1:]), attributes=attrs,
                  num_outputs=_RNN_OUTPUTS[node.op_type], name=f"{e.base}/forward")
    for new, old in zip(fwd.outputs, node.outputs):
        new.shape, new.type = old.shape, old.type
    for k, new in enumerate(fwd.outputs):
        new.name = f"{e.base}_fwd_out{k}"
        if new.type is None:
            new.type = x.type
    e.nodes.append(fwd)
    outs = list(fwd.outputs[:len(node.outputs)])
    y = node.outputs[0]
    if y is not None and y.uses() or (y is not None and y.is_graph_output()):
        outs[0] = reverse(e, fwd.outputs[0], t_axis, steps)
    return outs


# -- Split with uneven parts -------------------------------------------------------------

def _split_sizes(node: ir.Node) -> Optional[List[int]]:
    x = node.inputs[0]
    if x.shape is None:
        return None
    axis = _attr_int(node, "axis", 0) % len(x.shape)
    sizes = None
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        c = const_array(node.inputs[1])
        sizes = None if c is None else [int(s) for s in c.reshape(-1)]
    elif node.attributes.get("split") is not None:
        sizes = list(node.attributes.get_ints("split"))
    outs = [o.shape[axis] if o is not None and o.shape is not None else None
            for o in node.outputs]
    if sizes is None and all(isinstance(d, int) for d in outs):
        sizes = [int(d) for d in outs]
    return sizes


def _uneven_split(node: ir.Node) -> bool:
    sizes = _split_sizes(node)
    return sizes is not None and len(set(sizes)) > 1


@rewrite("Split", "one Slice per part (uneven parts)", check=_uneven_split)
def _split(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    axis = _attr_int(node, "axis", 0) % len(x.shape)
    outs, start = [], 0
    for size, old in zip(_split_sizes(node), node.outputs):
        if e.opset >= 10:
            v = e.op("Slice", [x, _i64(e, [start], "starts"), _i64(e, [start + size], "ends"),
                               _i64(e, [axis], "axes")], like=old)
        else:
            v = e.op("Slice", [x], {"starts": [start], "ends": [start + size], "axes": [axis]},
                     like=old)
        outs.append(v)
        start += size
    return outs


# -- LpNormalization --------------------------------------------------------------------

@rewrite("LpNormalization", "x / ReduceSum(|x|) or x / sqrt(ReduceSum(x * x)) on the axis")
def _lp_norm(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    rank = len(x.shape)
    axis = _attr_int(node, "axis", -1) % rank
    p = _attr_int(node, "p", 2)
    shape = [1 if k == axis else d for k, d in enumerate(x.shape)]
    mag = e.op("Abs", [x]) if p == 1 else e.op("Mul", [x, x])
    if e.opset >= 13:
        total = e.op("ReduceSum", [mag, _i64(e, [axis], "axes")], {"keepdims": 1}, shape=shape)
    else:
        total = e.op("ReduceSum", [mag], {"axes": [axis], "keepdims": 1}, shape=shape)
    norm = total if p == 1 else e.op("Sqrt", [total])
    # a zero norm has only zeros to divide: 0 (ONNX), not 0 / 0
    norm = e.op("Max", [norm, e.like(np.finfo(np.float32).tiny, x)])
    return [e.op("Div", [x, norm], like=x)]



# -- Mod (fmod=0) on floats: numpy's mod --------------------------------------------------

def _float_mod(node: ir.Node) -> bool:
    return node.attributes.get_int("fmod", 0) == 0


@rewrite("Mod", "r = a - b * trunc(a / b) (0 when trunc is 0), plus b where r and b differ "
                "in sign (fmod=0, floats)", check=_float_mod)
def _mod(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
    q = e.op("Div", [a, b], like=out)
    t = e.op("Mul", [e.op("Sign", [q]), e.op("Floor", [e.op("Abs", [q])])])
    zero = e.like(0.0, out)
    # trunc == 0 keeps a as it is: b * 0 would be nan for an infinite b
    bt = e.op("Where", [e.op("Equal", [t, zero], dtype=_BOOL), zero,
                        e.op("Mul", [b, t], like=out)], like=out)
    r = e.op("Sub", [a, bt], like=out)
    neg_r = e.op("Cast", [e.op("Greater", [zero, r], dtype=_BOOL)], {"to": int(out.dtype)})
    neg_b = e.op("Cast", [e.op("Greater", [zero, b], dtype=_BOOL)], {"to": int(out.dtype)},
                 like=b)
    differ = e.op("Greater", [e.op("Abs", [e.op("Sub", [neg_r, neg_b], like=out)]),
                              e.like(0.5, out)], dtype=_BOOL)
    nonzero = e.op("Greater", [e.op("Abs", [r]), zero], dtype=_BOOL)
    fix = e.op("Greater", [e.op("Add", [e.op("Cast", [differ], {"to": int(out.dtype)}),
                                        e.op("Cast", [nonzero], {"to": int(out.dtype)})]),
                           e.like(1.5, out)], dtype=_BOOL)
    res = e.op("Where", [fix, e.op("Add", [r, b], like=out), r], like=out)
    # a nan divisor gives nan (MNN's Sign(nan) is 0, which made the quotient 0)
    f = {"to": int(out.dtype)}
    above = e.op("Cast", [e.op("Greater", [b, e.like(-np.inf, b)], dtype=_BOOL, like=b)], f,
                 like=b)
    below = e.op("Cast", [e.op("Greater", [e.like(np.inf, b), b], dtype=_BOOL, like=b)], f,
                 like=b)
    b_ok = e.op("Greater", [e.op("Add", [above, below], like=b), e.like(0.5, b)], dtype=_BOOL,
                like=b)
    return [e.op("Where", [b_ok, res, b], like=out)]


# -- PRelu with a slope that is not per channel ---------------------------------------------

@rewrite("PRelu", "where(x < 0, x * slope, x)")
def _prelu(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, slope, out = node.inputs[0], node.inputs[1], node.outputs[0]
    neg = e.op("Greater", [e.like(0.0, x), x], dtype=_BOOL, like=out)
    return [e.op("Where", [neg, e.op("Mul", [x, slope], like=out), x], like=out)]


# -- Pow with operands of two types --------------------------------------------------------

@rewrite("Pow", "Pow on float operands, cast back to the base's type")
def _pow(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
    f32 = ir.DataType.FLOAT
    af = a if a.dtype == f32 else e.op("Cast", [a], {"to": int(f32)}, dtype=f32)
    bf = b if b.dtype == f32 else e.op("Cast", [b], {"to": int(f32)}, dtype=f32)
    p = e.op("Pow", [af, bf], dtype=f32, like=out)
    if out.dtype == f32:
        return [p]
    return [e.op("Cast", [p], {"to": int(out.dtype)}, like=out)]


@rewrite("Mean", "(a + b) * 0.5; x (one input)", check=lambda n: len(n.inputs) <= 2)
def _mean(e: Emitter, node: ir.Node) -> List[ir.Value]:
    if len(node.inputs) == 1:
        return _one_input(e, node)
    a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
    return [e.op("Mul", [e.op("Add", [a, b], like=out), e.like(0.5, out)], like=out)]


# -- reductions with an empty axes input -------------------------------------------------

def _empty_axes(node: ir.Node) -> bool:
    axes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    return axes is not None and axes.size == 0


@rewrite(("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"),
         "without the empty axes input (every axis), or x (noop_with_empty_axes)",
         check=_empty_axes)
def _reduce_all(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, out = node.inputs[0], node.outputs[0]
    if _attr_int(node, "noop_with_empty_axes", 0):
        return [e.op("Identity", [x], like=out)]
    return [e.op(node.op_type, [x], {"keepdims": _attr_int(node, "keepdims", 1)}, like=out)]


# -- Scatter with negative indices --------------------------------------------------------

def _scatter_fixable(node: ir.Node) -> bool:
    red = node.attributes.get_string("reduction", "none")
    return red in ("none", "max") and _axis_size(node) is not None


@rewrite("ScatterElements", "ScatterElements(x, where(i < 0, i + n, i), u)",
         check=_scatter_fixable)
@rewrite("Scatter", "Scatter(x, where(i < 0, i + n, i), u)", check=_scatter_fixable)
def _scatter(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, idx, upd = node.inputs
    fixed = _normalized(e, idx, _axis_size(node))
    attrs = {a.name: a.value for a in node.attributes.values()}
    return [e.op(node.op_type, [x, fixed, upd], attrs, like=node.outputs[0])]


# -- MatMul of a batch of matrices by a vector ---------------------------------------------

def _matrix_vector(node: ir.Node) -> bool:
    a, b = node.inputs[0], node.inputs[1]
    return a.shape is not None and b.shape is not None and len(b.shape) == 1 \
        and len(a.shape) > 2


@rewrite("MatMul", "ReduceSum(a * b) for two vectors; Squeeze(MatMul(a, Unsqueeze(b, 1)))",
         check=lambda n: _vector_dot(n) or _matrix_vector(n))
def _matmul(e: Emitter, node: ir.Node) -> List[ir.Value]:
    if _vector_dot(node):
        return _dot(e, node)
    a, b, out = node.inputs[0], node.inputs[1], node.outputs[0]
    col = _unsqueeze(e, b, [1], [b.shape[0], 1])
    mm_shape = list(out.shape) + [1] if out.shape is not None else None
    mm = e.op("MatMul", [a, col], shape=mm_shape, like=out)
    rank = len(a.shape)
    if e.opset >= 13:
        return [e.op("Squeeze", [mm, _i64(e, [rank - 1], "axes")], like=out)]
    return [e.op("Squeeze", [mm], {"axes": [rank - 1]}, like=out)]


@rewrite("Gemm", "Gemm(Transpose(A), B, C) (transA=1)")
def _gemm(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a = node.inputs[0]
    shape = list(reversed(a.shape)) if a.shape is not None else None
    at = e.op("Transpose", [a], {"perm": [1, 0]}, shape=shape)
    attrs = {x.name: x.value for x in node.attributes.values() if x.name != "transA"}
    return [e.op("Gemm", [at] + list(node.inputs[1:]), attrs, like=node.outputs[0])]


# -- shape ops ------------------------------------------------------------------------------

@rewrite("Size", "ReduceProd(Shape(x), keepdims=0)")
def _size(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    rank = len(x.shape) if x.shape is not None else None
    shape = e.op("Shape", [x], dtype=ir.DataType.INT64, shape=[rank] if rank else None)
    return [e.op("ReduceProd", [shape], {"keepdims": 0}, like=node.outputs[0])]


def _space_to_depth_static(node: ir.Node) -> bool:
    return static_shape(node.inputs[0]) is not None


@rewrite("SpaceToDepth", "Reshape [N,C,H/b,b,W/b,b] -> Transpose(0,1,3,5,2,4) -> Reshape "
                         "(mode=CRD)", check=_space_to_depth_static)
def _space_to_depth(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, out = node.inputs[0], node.outputs[0]
    n, c, hh, ww = static_shape(x)
    b = _attr_int(node, "blocksize", 1)
    six = [n, c, hh // b, b, ww // b, b]
    r = e.op("Reshape", [x, _i64(e, six, "shape")], shape=six)
    perm = [0, 1, 3, 5, 2, 4]
    t = e.op("Transpose", [r], {"perm": perm}, shape=[six[p] for p in perm])
    return [e.op("Reshape", [t, _i64(e, [n, c * b * b, hh // b, ww // b], "shape")],
                 like=out)]


def _pad_axes_static(node: ir.Node) -> bool:
    x = node.inputs[0]
    return len(node.inputs) > 3 and x.shape is not None \
        and const_array(node.inputs[3]) is not None and const_array(node.inputs[1]) is not None


@rewrite("Pad", "Pad with the pads of every axis (axes input dropped)", check=_pad_axes_static)
def _pad(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    rank = len(x.shape)
    axes = [int(a) % rank for a in const_array(node.inputs[3]).reshape(-1)]
    pads = const_array(node.inputs[1]).reshape(-1)
    full = np.zeros(2 * rank, np.int64)
    for k, a in enumerate(axes):
        full[a], full[rank + a] = pads[k], pads[len(axes) + k]
    inputs = [x, e.const(full, np.int64, "pads")]
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        inputs.append(node.inputs[2])
    attrs = {a.name: a.value for a in node.attributes.values()}
    return [e.op("Pad", inputs, attrs, like=node.outputs[0])]


@rewrite("ReverseSequence", "ReverseSequence(x, max(lens, 1)) (a length of 0 reverses "
                            "nothing, as 1 does)",
         check=lambda n: n.inputs[0].shape is not None and (
             _attr_int(n, "batch_axis", 1) == 1 or _attr_int(n, "time_axis", 0) == 1))
def _reverse_sequence(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, lens = node.inputs
    lens = e.op("Max", [lens, e.like(1, lens)])
    if _attr_int(node, "batch_axis", 1) == 1:
        return [e.op("ReverseSequence", [x, lens], {"batch_axis": 1, "time_axis": 0},
                     like=node.outputs[0])]
    rank = len(x.shape)
    perm = [1, 0] + list(range(2, rank))
    shape = [x.shape[p] for p in perm]
    xt = e.op("Transpose", [x], {"perm": perm}, shape=shape)
    rs = e.op("ReverseSequence", [xt, lens], {"batch_axis": 1, "time_axis": 0}, shape=shape)
    return [e.op("Transpose", [rs], {"perm": perm}, like=node.outputs[0])]


# -- Det of one matrix, losses with ignore_index and no weight -------------------------------

def _small_det(node: ir.Node) -> bool:
    x = node.inputs[0]
    return x.shape is not None and len(x.shape) >= 2 and x.shape[-1] == x.shape[-2] \
        and x.shape[-1] in (1, 2, 3)


@rewrite("Det", "the cofactor formula from Gathers (1x1, 2x2, 3x3 matrices)", check=_small_det)
def _det(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, out = node.inputs[0], node.outputs[0]
    n = x.shape[-1]
    rank = len(x.shape)
    row_shape = list(x.shape[:-2]) + [n]

    def at(i: int, j: int) -> ir.Value:
        row = e.op("Gather", [x, _i64(e, i, "row")], {"axis": rank - 2}, shape=row_shape)
        return e.op("Gather", [row, _i64(e, j, "col")], {"axis": rank - 2}, like=out)

    def mul(*vs: ir.Value) -> ir.Value:
        acc = vs[0]
        for v in vs[1:]:
            acc = e.op("Mul", [acc, v], like=out)
        return acc

    if n == 1:
        return [at(0, 0)]
    if n == 2:
        return [e.op("Sub", [mul(at(0, 0), at(1, 1)), mul(at(0, 1), at(1, 0))], like=out)]
    terms = [(mul(at(0, k), at(1, (k + 1) % 3), at(2, (k + 2) % 3)),
              mul(at(0, k), at(1, (k + 2) % 3), at(2, (k + 1) % 3))) for k in range(3)]
    acc = e.op("Sub", [terms[0][0], terms[0][1]], like=out)
    for plus, minus in terms[1:]:
        acc = e.op("Add", [acc, e.op("Sub", [plus, minus], like=out)], like=out)
    return [acc]


def _classes(node: ir.Node) -> Optional[int]:
    x = node.inputs[0]
    c = x.shape[1] if x.shape is not None and len(x.shape) > 1 else None
    return c if isinstance(c, int) else None


@rewrite("NegativeLogLikelihoodLoss", "the loss with a weight of ones (ignore_index, no weight)",
         check=lambda n: _classes(n) is not None)
@rewrite("SoftmaxCrossEntropyLoss", "the loss with a weight of ones (ignore_index, no weight)",
         check=lambda n: _classes(n) is not None and len(n.outputs) == 1)
def _loss_weight(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    ones = e.const(np.ones(_classes(node), x.dtype.numpy()), x.dtype.numpy(), "weight")
    attrs = {a.name: a.value for a in node.attributes.values()}
    return [e.op(node.op_type, [x, node.inputs[1], ones], attrs, like=node.outputs[0])]


# -- GELU: the exact form, in a shape MNN's converter does not fuse into its approximation --

@rewrite("Gelu", "x * (0.5 + 0.5 * erf(x * 1/sqrt(2))) (approximate='none')",
         check=lambda n: n.attributes.get_string("approximate", "none") == "none")
def _gelu(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    erf = e.op("Erf", [e.op("Mul", [x, e.like(float(1 / np.sqrt(2.0)), x)])])
    half = e.like(0.5, x)
    return [e.op("Mul", [x, e.op("Add", [e.op("Mul", [erf, half]), half])])]


@rewrite("Erf", "-erf(-x) (an erf feeding an Add: keeps the GELU pattern exact)")
def _erf(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    return [e.op("Neg", [e.op("Erf", [e.op("Neg", [x])])])]


# -- converter crashes -----------------------------------------------------------------------

@rewrite(("Max", "Min", "Sum"), "x (one input)", check=lambda n: len(n.inputs) == 1)
def _one_input(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return [e.op("Identity", [node.inputs[0]], like=node.outputs[0])]


def _bn_params_ok(node: ir.Node) -> bool:
    """Inference form only: the running-statistics outputs, if any, unused."""
    x = node.inputs[0]
    return x.shape is not None and len(x.shape) >= 2 and all(
        o is None or not (o.uses() or o.is_graph_output()) for o in node.outputs[1:])


@rewrite("BatchNormalization", "(x - mean) / sqrt(var + eps) * scale + bias, the parameters "
                               "reshaped to [C, 1, ...] (computed at run time)",
         check=_bn_params_ok)
def _batch_norm(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, scale, bias, mean, var = node.inputs[:5]
    rank = len(x.shape)
    eps = node.attributes.get_float("epsilon", 1e-5)
    channels = x.shape[1]
    shape = [channels] + [1] * (rank - 2)

    def per_channel(v: ir.Value) -> ir.Value:
        return e.op("Reshape", [v, _i64(e, [-1] + [1] * (rank - 2), "shape")], shape=shape,
                    like=v)

    centered = e.op("Sub", [x, per_channel(mean)], like=x)
    std = e.op("Sqrt", [e.op("Add", [per_channel(var), e.like(eps, x)], like=var)], like=var)
    normed = e.op("Div", [centered, std], like=x)
    return [e.op("Add", [e.op("Mul", [normed, per_channel(scale)], like=x),
                         per_channel(bias)], like=x)]
