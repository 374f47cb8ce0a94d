"""``Div(x, c)`` with a float constant ``c`` -> ``Mul(x, 1/c)``.

Models divide by constants all the time (``x / 255``, ``(x - mean) / std``, attention's
``/ sqrt(d)``). A multiply is cheaper than a divide on every CPU, and it is what the
int8 kernels have: TFLite has no int8 DIV, so a divide would stay float between a
DEQUANTIZE and a QUANTIZE. The reciprocal is taken in float64 and rounded once to the
constant's dtype, so the result is within an ulp of the divide. Refused for integer
division (it truncates) and for constants holding a zero (``x / 0`` keeps its IEEE
meaning). onnxscript has no such rule; it is a few lines here.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from converters.passes.base import RulePass

_FLOATS = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16)


class DivByConstant(RewriteRuleClassBase):
    def pattern(self, op, x, c):
        return op.Div(x, c)

    def check(self, context, x, c) -> MatchResult:
        result = MatchResult()
        if c.const_value is None:
            return result.fail("divisor is not a constant")
        if c.dtype not in _FLOATS:
            return result.fail(f"integer division ({c.dtype}) truncates")
        if np.any(c.const_value.numpy() == 0):
            return result.fail("divisor holds a zero")
        return result

    def rewrite(self, op, x, c):
        value = c.const_value.numpy()
        recip = (1.0 / value.astype(np.float64)).astype(value.dtype)
        return op.Mul(x, op.Constant(value=ir.tensor(recip, name=f"{c.name}_reciprocal")))


class DivToMul(RulePass):
    name = "div_to_mul"
    description = "divide by a float constant -> multiply by its reciprocal"

    def rules(self):
        return [DivByConstant.rule()]

    def reported_rules(self):
        return []
