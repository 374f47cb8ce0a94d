"""``Add(MatMul(a, b), c)`` -> ``Gemm(a, b, c)`` (also with a transposed a or b).

onnxscript's rules check only that a and b have rank 2. Gemm also requires
``c`` to broadcast *into* the (M, N) result without enlarging it
(unidirectional broadcasting), which ``Add`` does not, so the rule here adds
that check: an ``Add`` whose other operand has a larger rank or a dim that
would grow the result is refused with that reason.
"""
from __future__ import annotations

from onnxscript.rewriter import MatchResult

from converters.passes.base import RulePass


def _gemm_rule(base_rule_cls):
    class Checked(base_rule_cls):
        def check(self, context, input_a, input_b, input_c=None, **kw) -> MatchResult:
            result = super().check(context, input_a, input_b, **kw)
            if not result:
                return result
            out = context.output_values[0]
            if input_c is None or input_c.shape is None or out.shape is None:
                return result.fail("bias or result shape unknown")
            c_shape, o_shape = list(input_c.shape), list(out.shape)
            if len(c_shape) > 2:
                return result.fail(f"bias {input_c.name} has rank {len(c_shape)} > 2")
            for c_dim, o_dim in zip(reversed(c_shape), reversed(o_shape)):
                if c_dim != 1 and c_dim != o_dim:
                    return result.fail(f"bias {input_c.name} shape {c_shape} does not "
                                       f"broadcast into the result {o_shape}")
            return result

    Checked.__name__ = base_rule_cls.__name__
    return Checked().rule()


class FuseMatMulAdd(RulePass):
    name = "fuse_matmul_add"
    description = "MatMul + Add -> Gemm (rank-2 operands, bias broadcast into the result)"

    def rules(self):
        from onnxscript.rewriter.rules.common import _matmul_add_to_gemm as G

        rules = []
        for cls in (G.MatMulAddToGemm, G.TransAMatMulAddToGemm, G.TransBMatMulAddToGemm,
                    G.TransABMatMulAddToGemm):
            rules += _gemm_rule(cls).commute()          # Add(MatMul, c) and Add(c, MatMul)
        return rules
