"""Dead code and no-ops: unused nodes, Identity, Dropout (inference), x+0, x*1,
x-0, x/1, no-op Cast/Expand/Transpose.

onnx-ir's RemoveUnusedNodesPass and IdentityEliminationPass and onnxscript's
no-op rules do the work; this module groups them into one reported pass.
Dropout at inference is the identity (its ratio never applies in eval), so the
rules drop it whether or not ``training_mode`` is given as a constant false.
"""
from __future__ import annotations

import onnx_ir as ir

from converters.passes.base import PassResult, RulePass


class RemoveDead(RulePass):
    name = "remove_dead"
    description = "remove unused nodes, Identity, inference Dropout and arithmetic no-ops"

    def rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.dropout_inference_rule, R.dropout_zero_rule,
                *R.mul_by_1_rule.commute(), *R.add_0_rule.commute(), R.sub_0_rule,
                R.div_by_1_rule, R.no_op_cast_rule, R.no_op_expand_rule, R.no_op_transpose_rule]

    def reported_rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.dropout_inference_rule]  # "why is this Dropout still here?"

    def run(self, model: ir.Model) -> PassResult:
        before = _node_count(model)
        ir.passes.common.RemoveUnusedNodesPass()(model)
        unused = before - _node_count(model)
        before = _node_count(model)
        ir.passes.common.IdentityEliminationPass()(model)
        identities = before - _node_count(model)
        result = super().run(model)
        result.changes += unused + identities
        if unused:
            result.notes.append(f"removed {unused} unused node(s)")
        if identities:
            result.notes.append(f"removed {identities} Identity node(s)")
        return result


def _node_count(model: ir.Model) -> int:
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))
