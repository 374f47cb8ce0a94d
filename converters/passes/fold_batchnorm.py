"""Fold BatchNormalization into the Conv, ConvTranspose, Gemm or MatMul before it.

    y = gamma * (W x + b - mean) / sqrt(var + eps) + beta
      = (s * W) x + (s * (b - mean) + beta),   s = gamma / sqrt(var + eps)

Conv/ConvTranspose/Gemm: onnxscript's rules (``_fuse_batchnorm``), which refuse
when a weight is not a constant initializer or is shared with another node.
MatMul is ours: a ``MatMul(x, W)`` has its output features on the last axis and
BatchNormalization normalizes axis 1, so they coincide only when the MatMul
output has rank 2 (``Linear`` + ``BatchNorm1d``); the rule refuses other ranks
and says so. The folded MatMul gets an ``Add`` of the new bias, which the
MatMul+Add pass may then turn into a Gemm.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from converters.passes.base import RulePass


class FuseBatchNormIntoMatMul(RewriteRuleClassBase):
    """``BatchNormalization(MatMul(x, W))`` -> ``Add(MatMul(x, s*W), s*(-mean) + beta)``."""

    def pattern(self, op, x, w):
        return op.BatchNormalization(op.MatMul(x, w, _outputs=["mm_out"]),
                                     _allow_other_inputs=True, _outputs=["bn_out"])

    def check(self, context, x, w, mm_out, bn_out) -> MatchResult:
        result = MatchResult()
        bn = bn_out.producer()
        consts = [w, *bn.inputs[1:5]]
        for v in consts:
            if v is None or v.const_value is None or not v.is_initializer():
                return result.fail(f"{getattr(v, 'name', '?')} is not a constant initializer.")
            if v.is_graph_input():
                return result.fail(f"{v.name} is a graph input.")
        if len(w.const_value.shape) != 2:
            return result.fail(f"MatMul weight {w.name} has rank {len(w.const_value.shape)}, "
                               "not 2.")
        known = mm_out.shape if mm_out.shape is not None else x.shape
        rank = len(known) if known is not None else None
        if rank is None:
            return result.fail("MatMul output rank unknown (no shape information).")
        if rank != 2:
            return result.fail(
                f"MatMul output has rank {rank}: BatchNormalization scales axis 1, the "
                "MatMul's output features are on the last axis (foldable only at rank 2).")
        for user, _ in w.uses():
            if user is not mm_out.producer():
                return result.fail(f"Weight {w.name} is shared with node {user.name!r}.")
        return result

    def rewrite(self, op, x, w, mm_out, bn_out):
        bn = bn_out.producer()
        gamma, beta, mean, var = (v.const_value.numpy().astype(np.float64)
                                  for v in bn.inputs[1:5])
        eps_attr = bn.attributes.get("epsilon")
        eps = eps_attr.as_float() if eps_attr is not None else 1e-5
        scale = gamma / np.sqrt(var + eps)
        weight = w.const_value.numpy()
        new_w = (weight.astype(np.float64) * scale[None, :]).astype(weight.dtype)
        new_b = (beta - mean * scale).astype(weight.dtype)
        w_init = op.initializer(ir.tensor(new_w), name=f"{w.name}_bnfold")
        b_init = op.initializer(ir.tensor(new_b), name=f"{w.name}_bnfold_bias")
        return op.Add(op.MatMul(x, w_init), b_init)


fuse_batchnorm_into_matmul_rule = FuseBatchNormIntoMatMul.rule()


class FoldBatchNorm(RulePass):
    name = "fold_batchnorm"
    description = "fold BatchNormalization into the Conv/ConvTranspose/Gemm/MatMul before it"

    def rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.fuse_batchnorm_into_conv_rule, R.fuse_batchnorm_into_conv_transpose_rule,
                R.fuse_batchnorm_into_gemm_rule, fuse_batchnorm_into_matmul_rule]
