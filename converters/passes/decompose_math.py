"""Elementwise math and activations written as other ONNX ops: hyperbolic functions and
their inverses, Tan, Erf (outside GELU), IsNaN/IsInf, Mean, Shrink, Swish, Hardmax.

The forms are the textbook identities, chosen not to overflow or lose the sign:
``asinh`` is taken of ``|x|`` and the sign put back, ``atanh`` is the log of a ratio
of two positives. ``erf`` is XLA's float rational approximation (the one TensorFlow's
CPU kernels use): ``x * P(x^2) / Q(x^2)`` on ``x`` clamped to [-4, 4], within 4.2e-7 of
the true erf everywhere (max abs error over [-6, 6] measured in ``test_decompose``), a
few float32 ulp.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.graph_edit import Emitter


def _x(node: ir.Node) -> ir.Value:
    return node.inputs[0]


def _float_input(node: ir.Node) -> Optional[str]:
    x = node.inputs[0]
    if x.dtype is not None and x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16,
                                                ir.DataType.DOUBLE):
        return f"only float inputs (this one is {x.dtype})"
    return None


@decomposition("Tan", "sin(x) / cos(x)", refuse=_float_input)
def _tan(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    return [e.op("Div", [e.op("Sin", [x]), e.op("Cos", [x])])]


def _exp_pair(e: Emitter, x: ir.Value):
    return e.op("Exp", [x]), e.op("Exp", [e.op("Neg", [x])])


@decomposition("Sinh", "(exp(x) - exp(-x)) / 2", refuse=_float_input)
def _sinh(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    a, b = _exp_pair(e, x)
    return [e.op("Mul", [e.op("Sub", [a, b]), e.like(0.5, x)])]


@decomposition("Cosh", "(exp(x) + exp(-x)) / 2", refuse=_float_input)
def _cosh(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    a, b = _exp_pair(e, x)
    return [e.op("Mul", [e.op("Add", [a, b]), e.like(0.5, x)])]


@decomposition("Asinh", "sign(x) * log(|x| + sqrt(x^2 + 1))", refuse=_float_input)
def _asinh(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    ax = e.op("Abs", [x])
    root = e.op("Sqrt", [e.op("Add", [e.op("Mul", [x, x]), e.like(1.0, x)])])
    return [e.op("Mul", [e.op("Sign", [x]), e.op("Log", [e.op("Add", [ax, root])])])]


@decomposition("Acosh", "log(x + sqrt(x^2 - 1))", refuse=_float_input)
def _acosh(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    root = e.op("Sqrt", [e.op("Sub", [e.op("Mul", [x, x]), e.like(1.0, x)])])
    return [e.op("Log", [e.op("Add", [x, root])])]


@decomposition("Atanh", "log((1 + x) / (1 - x)) / 2", refuse=_float_input)
def _atanh(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    one = e.like(1.0, x)
    ratio = e.op("Div", [e.op("Add", [one, x]), e.op("Sub", [one, x])])
    return [e.op("Mul", [e.op("Log", [ratio]), e.like(0.5, x)])]


# XLA's ErfImpl32: erf(x) = x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (Horner order).
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)


def _horner(e: Emitter, t: ir.Value, coeffs) -> ir.Value:
    acc = e.like(coeffs[0], t)
    acc = e.op("Add", [e.op("Mul", [t, acc]), e.like(coeffs[1], t)])
    for c in coeffs[2:]:
        acc = e.op("Add", [e.op("Mul", [acc, t]), e.like(c, t)])
    return acc


def clamp(e: Emitter, x: ir.Value, lo: float, hi: float) -> ir.Value:
    """min(max(x, lo), hi) as Max/Min (a Clip's bounds are inputs or attributes by opset)."""
    return e.op("Min", [e.op("Max", [x, e.like(lo, x)]), e.like(hi, x)])


def erf(e: Emitter, x: ir.Value) -> ir.Value:
    xc = clamp(e, x, -4.0, 4.0)
    t = e.op("Mul", [xc, xc])
    return e.op("Div", [e.op("Mul", [xc, _horner(e, t, _ERF_P)]), _horner(e, t, _ERF_Q)])


@decomposition("Erf", "x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (XLA's float erf, "
               "within 4.2e-7)", refuse=_float_input)
def _erf(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return [erf(e, _x(node))]


@decomposition("IsNaN", "not (x <= +inf)", refuse=_float_input)
def _isnan(e: Emitter, node: ir.Node) -> List[ir.Value]:
    """Every comparison with NaN is false; ``x == x`` would say so too, but MNN's Equal
    answers true for NaN == NaN (measured), its LessOrEqual is IEEE's."""
    x = _x(node)
    return [e.op("Not", [e.op("LessOrEqual", [x, e.like(np.inf, x)], dtype=ir.DataType.BOOL)])]


@decomposition("IsInf", "x == +inf or x == -inf (as detect_positive/negative say)",
               refuse=_float_input)
def _isinf(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    a = node.attributes
    tests = []
    if a.get_int("detect_positive", 1):
        tests.append(e.op("Equal", [x, e.like(np.inf, x)], dtype=ir.DataType.BOOL))
    if a.get_int("detect_negative", 1):
        tests.append(e.op("Equal", [x, e.like(-np.inf, x)], dtype=ir.DataType.BOOL))
    if not tests:
        return [e.op("Equal", [x, e.like(np.nan, x)], dtype=ir.DataType.BOOL)]   # all False
    return [tests[0] if len(tests) == 1 else e.op("Or", tests)]


@decomposition("Mean", "Sum(x...) / n")
def _mean(e: Emitter, node: ir.Node) -> List[ir.Value]:
    ins = [v for v in node.inputs if v is not None]
    total = ins[0]
    for v in ins[1:]:
        total = e.op("Add", [total, v])
    if len(ins) == 1:
        return [e.op("Identity", [total])]
    return [e.op("Div", [total, e.like(float(len(ins)), ins[0])])]


@decomposition("Shrink", "x - bias where x > lambd, x + bias where x < -lambd, else 0")
def _shrink(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    lambd = node.attributes.get_float("lambd", 0.5)
    bias = node.attributes.get_float("bias", 0.0)
    above = e.op("Greater", [x, e.like(lambd, x)], dtype=ir.DataType.BOOL)
    below = e.op("Greater", [e.like(-lambd, x), x], dtype=ir.DataType.BOOL)
    inner = e.op("Where", [below, e.op("Add", [x, e.like(bias, x)]), e.like(0, x)], like=x)
    return [e.op("Where", [above, e.op("Sub", [x, e.like(bias, x)]), inner], like=x)]


@decomposition("Swish", "x * sigmoid(alpha * x)")
def _swish(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    alpha = node.attributes.get_float("alpha", 1.0)
    ax = x if alpha == 1.0 else e.op("Mul", [x, e.like(alpha, x)])
    return [e.op("Mul", [x, e.op("Sigmoid", [ax])])]


def _refuse_hardmax(node: ir.Node) -> Optional[str]:
    x = node.inputs[0]
    if x.shape is None:
        return "the input rank is unknown"
    if any(not isinstance(d, int) for d in x.shape):
        return "the input shape must be static"
    return None


def _hardmax_opset(node: ir.Node) -> int:
    from converters.passes.decompose import _opset_of

    return _opset_of(node) or 13


@decomposition("Hardmax", "ArgMax(x, axis) == arange(n) along axis (the first maximum)",
               refuse=_refuse_hardmax)
def _hardmax(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = _x(node)
    shape = list(x.shape)
    r = len(shape)
    if e.opset >= 13:
        axis = node.attributes.get_int("axis", -1) % r
        work, wshape = x, shape
    else:       # before 13: over the flattened tail [prod(:axis), prod(axis:)]
        axis0 = node.attributes.get_int("axis", 1) % r
        wshape = [int(np.prod(shape[:axis0])), int(np.prod(shape[axis0:]))]
        work, axis = e.reshape(x, wshape), 1
    arg = e.op("ArgMax", [work], {"axis": axis, "keepdims": 1})
    n = wshape[axis]
    positions = e.ints(np.arange(n).reshape([n if k == axis else 1 for k in range(len(wshape))]))
    hot = e.op("Cast", [e.op("Equal", [arg, positions], dtype=ir.DataType.BOOL)],
               {"to": int(x.dtype)}, dtype=x.dtype)
    return [hot if wshape == shape else e.reshape(hot, shape)]


def _refuse_matmul(node: ir.Node) -> Optional[str]:
    ranks = [None if v.shape is None else len(v.shape) for v in node.inputs[:2]]
    if None in ranks:
        return "operand ranks are unknown"
    if 1 not in ranks:
        return "only 1-D operands are rewritten (as [1, K] / [K, 1] matrices)"
    return None


@decomposition("MatMul", "a 1-D operand as a [1, K] row or [K, 1] column, the added dim "
               "squeezed from the result", refuse=_refuse_matmul)
def _matmul_1d(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a, b = node.inputs[0], node.inputs[1]
    a1, b1 = len(a.shape) == 1, len(b.shape) == 1
    if a1:
        a = e.unsqueeze(a, [0])
    if b1:
        b = e.unsqueeze(b, [1])
    y = e.op("MatMul", [a, b])
    rank = len(y.shape)
    gone = ([rank - 2] if a1 else []) + ([rank - 1] if b1 else [])
    return [e.squeeze(y, gone)]
