"""Elementwise arithmetic, comparisons and unary math.

Operands follow the output's stored layout; constant operands are broadcast-aligned
and transposed to it once at conversion (a per-channel ``[C,1,1]`` becomes
``[1,1,1,C]`` under NHWC). ADD/SUB/MUL/DIV take a following Relu/Relu6 as their
fused activation. ``Pow`` by 2 or 0.5 becomes SQUARE / SQRT, ``Reciprocal`` a
DIV, ``Identity``/``Dropout`` no op at all.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from converters.layout.graph import const_of, is_const
from converters.tflite.context import np_dtype
from converters.tflite.registry import lowering
from converters.tflite.schema import options, tensor_type

_BINARY = {
    "Add": ("ADD", "Add"), "Sub": ("SUB", "Sub"), "Mul": ("MUL", "Mul"), "Div": ("DIV", "Div"),
    "Max": ("MAXIMUM", None), "Min": ("MINIMUM", None), "Pow": ("POW", None),
    "Equal": ("EQUAL", None), "Less": ("LESS", None), "Greater": ("GREATER", None),
    "LessOrEqual": ("LESS_EQUAL", None), "GreaterOrEqual": ("GREATER_EQUAL", None),
    "And": ("LOGICAL_AND", None), "Or": ("LOGICAL_OR", None), "Sum": ("ADD", "Add"),
}
_FUSABLE = {"ADD", "SUB", "MUL", "DIV"}


def _operand(ctx, node, i: int, keep_int64: bool = False) -> int:
    v = node.inputs[i]
    if is_const(v):
        return ctx.tensor_of(v, ctx.perm(node.outputs[0]) if ctx.const(v).ndim else None,
                             keep_int64=keep_int64 or _int64_operands(ctx, node))
    return ctx.input(node, i)


def _int64_operands(ctx, node) -> bool:
    """Some computed operand is an int64 tensor (token ids, masks): an int64 constant
    beside it must stay int64, or the kernel refuses the mix (EQUAL: INT64 != INT32)."""
    from converters.tflite.schema import tensor_type

    int64 = tensor_type(np.int64)
    return any(v is not None and not is_const(v) and
               ctx.sg.tensors[ctx.input(node, k)].type == int64
               for k, v in enumerate(node.inputs))


def check_binary(node) -> Optional[str]:
    if node.op_type == "Div" and node.inputs[0] is not None and node.inputs[0].dtype is not None:
        if np.dtype(node.inputs[0].dtype.numpy()).kind in "iu":
            return "integer division has no exact TFLite equivalent (FLOOR_DIV rounds down)"
    if all(is_const(v) for v in node.inputs if v is not None):
        return "all operands are constant; run constant folding first"
    return None


@lowering(*_BINARY, emits={op: (b,) + (("SQUARE", "SQRT") if op == "Pow" else ())
                           for op, (b, _) in _BINARY.items()}, check=check_binary)
def lower_binary(node, ctx) -> None:
    """Binary (and variadic Max/Min/Sum, chained) elementwise ops with numpy broadcasting."""
    builtin, opt_kind = _BINARY[node.op_type]
    if node.op_type == "Pow" and is_const(node.inputs[1]):
        e = const_of(node.inputs[1])
        if e.size == 1 and float(e) in (2.0, 0.5):
            out = ctx.output(node)
            ctx.emit("SQUARE" if float(e) == 2.0 else "SQRT", [ctx.input(node, 0)], [out])
            return
    acc = _operand(ctx, node, 0)
    n = len(node.inputs)
    for i in range(1, n):
        last = i == n - 1
        if last:
            act, out_value = ctx.fuse_activation(node) if builtin in _FUSABLE else (0, None)
            out = ctx.output(node, value=out_value)
        else:
            out = ctx.tmp(f"{node.outputs[0].name}_{i}", ctx.stored_shape(node.outputs[0]),
                          np_dtype(node.outputs[0]))
            act = 0
        opts = options(opt_kind, fusedActivationFunction=act) if opt_kind else None
        ctx.emit(builtin, [acc, _operand(ctx, node, i)], [out], opts)
        acc = out
    if n == 1:
        ctx.bind(node.outputs[0], acc)


_UNARY = {
    "Sqrt": "SQRT", "Exp": "EXP", "Log": "LOG", "Neg": "NEG", "Abs": "ABS", "Floor": "FLOOR",
    "Ceil": "CEIL", "Round": "ROUND", "Sin": "SIN", "Cos": "COS", "Sign": "SIGN",
    "Not": "LOGICAL_NOT",
}


@lowering(*_UNARY, emits={op: (b,) for op, b in _UNARY.items()})
def lower_unary(node, ctx) -> None:
    """One-input math ops, mapped one to one."""
    x = ctx.input(node, 0)
    out = ctx.output(node)
    ctx.emit(_UNARY[node.op_type], [x], [out])


@lowering("Reciprocal", emits=("DIV",))
def lower_reciprocal(node, ctx) -> None:
    """1 / x as DIV."""
    x = ctx.input(node, 0)
    out = ctx.output(node)
    one = ctx.const_tensor("one", np.array(1.0, dtype=np.float32))
    ctx.emit("DIV", [one, x], [out], options("Div"))


@lowering("Identity", "Dropout", emits=())
def lower_identity(node, ctx) -> None:
    """No op: the output is the input's tensor."""
    v = node.inputs[0]
    ctx.bind(node.outputs[0], ctx.tensor_of(v), ctx.perm(v) if not is_const(v) else None)


@lowering("Cast", emits=("CAST",))
def lower_cast(node, ctx) -> None:
    """Type conversion (int64 results are kept int64)."""
    x = ctx.input(node, 0)
    out = ctx.output(node)
    src = ctx.sg.tensors[x].type
    ctx.emit("CAST", [x], [out], options("Cast", inDataType=src,
                                         outDataType=tensor_type(np_dtype(node.outputs[0]))))


@lowering("Where", emits=("SELECT_V2",))
def lower_where(node, ctx) -> None:
    """Where(cond, x, y) with broadcasting (int64 constants stay int64 for an int64 result)."""
    int64 = np_dtype(node.outputs[0]) == np.int64
    ins = [_operand(ctx, node, i, keep_int64=int64 and i > 0) for i in range(3)]
    out = ctx.output(node)
    ctx.emit("SELECT_V2", ins, [out])
