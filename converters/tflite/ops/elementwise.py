"""Elementwise arithmetic, comparisons and unary math.

Operands follow the output's stored layout; constant operands are broadcast-aligned
and transposed to it once at conversion (a per-channel ``[C,1,1]`` becomes
``[1,1,1,C]`` under NHWC). ADD/SUB/MUL/DIV take a following Relu/Relu6 as their
fused activation. ``Pow`` by 2 or 0.5 becomes SQUARE / SQRT, ``Reciprocal`` a
DIV, ``Identity``/``Dropout`` no op at all.

``Pow`` by a constant integer (|n| <= 8) is a chain of MULs by squaring (SQUARE for 2,
a DIV for negative n), which XNNPACK runs and which is exact where POW's ``exp(n log x)``
is not; 0.5 / -0.5 are SQRT / RSQRT; an integer exponent tensor beside a float base
is cast (constants at conversion), an integer base with a float exponent computed in
float and cast back (ONNX's type rule: the result has the base's type). ``Mod`` with
``fmod=0`` is FLOOR_MOD (the sign of the divisor, like ``np.mod``); float ``fmod=1`` is
decomposed. Atan, Asin and Acos are ATAN2 of ``(x, 1)``, ``(x, sqrt(1 - x^2))`` and
``(sqrt(1 - x^2), x)``.
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
    "Max": ("MAXIMUM", None), "Min": ("MINIMUM", None),
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


@lowering(*[op for op in _BINARY if op != "Pow"],
          emits={op: (b,) for op, (b, _) in _BINARY.items() if op != "Pow"}, check=check_binary)
def lower_binary(node, ctx) -> None:
    """Binary (and variadic Max/Min/Sum, chained) elementwise ops with numpy broadcasting."""
    builtin, opt_kind = _BINARY[node.op_type]
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


_MAX_CHAIN = 8       # |n| up to which x^n is written as MULs


def _int_exponent(node) -> Optional[int]:
    e = const_of(node.inputs[1]) if is_const(node.inputs[1]) else None
    if e is None or e.size != 1:
        return None
    v = float(e.reshape(-1)[0])
    return int(v) if v == int(v) and abs(v) <= _MAX_CHAIN else None


def _power_chain(ctx, x: int, n: int, shape, name: str, out: int) -> None:
    """out = x^n (n >= 2) by squaring: SQUARE and MUL, at most 2 * log2(n) ops."""
    squares, k = [x], n
    while k > 1:
        k >>= 1
        t = ctx.tmp(f"{name}_sq{len(squares)}", shape)
        squares.append(t)
    factors = [squares[b] for b in range(len(squares)) if n >> b & 1]
    steps = [("SQUARE", [squares[b - 1]], squares[b]) for b in range(1, len(squares))]
    acc = factors[0]
    for k, f in enumerate(factors[1:]):
        t = ctx.tmp(f"{name}_acc{k}", shape)
        steps.append(("MUL", [acc, f], t))
        acc = t
    last = steps[-1][2]
    for builtin, ins, dst in steps:
        ctx.emit(builtin, ins, [out if dst == last else dst],
                 options("Mul") if builtin == "MUL" else None)


def check_pow(node) -> Optional[str]:
    if all(is_const(v) for v in node.inputs):
        return "all operands are constant; run constant folding first"
    base = np_dtype(node.inputs[0])
    if base.kind in "iu" and _int_exponent(node) is None and \
            np_dtype(node.inputs[1]).kind in "iu":
        return "an integer power with a run-time integer exponent has no TFLite kernel"
    return None


@lowering("Pow", emits=("POW", "MUL", "SQUARE", "SQRT", "RSQRT", "DIV", "CAST"),
          check=check_pow)
def lower_pow(node, ctx) -> None:
    """Integer exponents as MUL chains, 0.5 / -0.5 as SQRT / RSQRT, else POW in float."""
    out_value = node.outputs[0]
    shape = ctx.stored_shape(out_value)
    name = out_value.name
    base_dt = np_dtype(node.inputs[0])
    n = _int_exponent(node)
    e = const_of(node.inputs[1]) if is_const(node.inputs[1]) else None
    x = ctx.input(node, 0)
    if n is not None and n != 0 and (base_dt.kind == "f" or n > 0):
        if n == 1:
            ctx.bind(out_value, x, ctx.input_perm(node, 0))
            return
        if n == -1:
            chain = x
        else:
            chain = ctx.output(node) if n > 0 else ctx.tmp(f"{name}_pos", shape)
            _power_chain(ctx, x, abs(n), shape, name, chain)
        if n < 0:
            one = ctx.const_tensor("one", np.array(1.0, base_dt))
            ctx.emit("DIV", [one, chain], [ctx.output(node)], options("Div"))
        return
    if e is not None and e.size == 1 and base_dt.kind == "f" and float(e) in (0.5, -0.5):
        ctx.emit("SQRT" if float(e) > 0 else "RSQRT", [x], [ctx.output(node)])
        return
    if base_dt.kind != "f":                       # int base, float exponent: in float, cast back
        xf = ctx.tmp(f"{name}_base_f", shape)
        ctx.emit("CAST", [x], [xf], options("Cast", inDataType=tensor_type(base_dt),
                                            outDataType=tensor_type(np.float32)))
        x = xf
    if e is not None:
        exp_t = ctx.tensor_of(node.inputs[1], ctx.perm(out_value) if e.ndim else None)
        if e.dtype.kind != "f":
            exp_t = ctx.const_tensor(f"{name}_exponent", np.asarray(
                e if not e.ndim else _aligned(ctx, node, e), np.float32))
    else:
        exp_t = ctx.input(node, 1)
        src = np_dtype(node.inputs[1])
        if src.kind != "f":
            cast = ctx.tmp(f"{name}_exp_f", ctx.stored_shape(node.inputs[1],
                                                             ctx.input_perm(node, 1)))
            ctx.emit("CAST", [exp_t], [cast], options("Cast", inDataType=tensor_type(src),
                                                      outDataType=tensor_type(np.float32)))
            exp_t = cast
    if base_dt.kind == "f":
        ctx.emit("POW", [x, exp_t], [ctx.output(node)])
        return
    pf = ctx.tmp(f"{name}_pow_f", shape)
    ctx.emit("POW", [x, exp_t], [pf])
    ctx.emit("CAST", [pf], [ctx.output(node)], options(
        "Cast", inDataType=tensor_type(np.float32), outDataType=tensor_type(base_dt)))


def _aligned(ctx, node, arr: np.ndarray) -> np.ndarray:
    """A constant operand broadcast-aligned and stored in the output's layout."""
    from converters.layout.perm import permute_array

    rank = len(ctx.perm(node.outputs[0]))
    arr = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    return permute_array(arr, ctx.perm(node.outputs[0]))


def check_mod(node) -> Optional[str]:
    if node.attributes.get_int("fmod", 0):
        return "fmod=1 (truncated remainder) has no TFLite kernel (FLOOR_MOD is fmod=0)"
    return check_binary(node)


@lowering("Mod", emits=("FLOOR_MOD",), check=check_mod)
def lower_mod(node, ctx) -> None:
    """fmod=0: the remainder with the divisor's sign, FLOOR_MOD."""
    ctx.emit("FLOOR_MOD", [_operand(ctx, node, 0), _operand(ctx, node, 1)], [ctx.output(node)])


def check_inverse_trig(node) -> Optional[str]:
    from converters.layout.graph import shape_of

    shape = shape_of(node.inputs[0])
    if node.op_type == "Atan" and (shape is None or any(d is None for d in shape)):
        return "ATAN2 does not broadcast: the input shape must be static"
    return None


@lowering("Atan", "Asin", "Acos", emits=("ATAN2", "SQUARE", "SUB", "SQRT"),
          check=check_inverse_trig)
def lower_inverse_trig(node, ctx) -> None:
    """atan(x) = atan2(x, 1); asin = atan2(x, sqrt(1 - x^2)); acos = atan2(sqrt(1 - x^2), x)."""
    x = ctx.input(node, 0)
    shape = ctx.stored_shape(node.outputs[0])
    name = node.outputs[0].name
    if node.op_type == "Atan":        # ATAN2 does not broadcast: ones of x's shape
        ones = ctx.const_tensor(f"{name}_ones", np.ones(shape, np.float32))
        ctx.emit("ATAN2", [x, ones], [ctx.output(node)])
        return
    sq = ctx.tmp(f"{name}_sq", shape)
    ctx.emit("SQUARE", [x], [sq])
    rest = ctx.tmp(f"{name}_1m", shape)
    ctx.emit("SUB", [ctx.const_tensor("one", np.array(1.0, np.float32)), sq], [rest],
             options("Sub"))
    root = ctx.tmp(f"{name}_root", shape)
    ctx.emit("SQRT", [rest], [root])
    ins = [x, root] if node.op_type == "Asin" else [root, x]
    ctx.emit("ATAN2", ins, [ctx.output(node)])


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
