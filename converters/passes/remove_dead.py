"""Dead code and no-ops: unused nodes, Identity, Dropout at inference, x*1, x+0,
x-0, x/1, no-op Cast/Expand/Transpose.

onnx-ir's RemoveUnusedNodesPass and IdentityEliminationPass and onnxscript's
no-op Cast/Expand/Transpose rules are reused. The Dropout and arithmetic rules
are ours because onnxscript's match only ``Dropout`` with an explicit
``ratio=0`` or ``training_mode=False`` and only scalar constants: exporters
write ``Dropout(x)`` (training_mode defaults to false, so it is the identity at
inference) and 1-element tensors like ``[1.0]``. An arithmetic no-op is
removed only when the constant cannot change the result's shape (it
broadcasts into ``x``) or its dtype.

Identity elimination is ours too: onnx-ir's pass makes a subgraph's output the
outer-scope value an Identity forwarded, and fails ("... is already an output of a
different graph") when two branches of an ``If`` forward the same value (Silero VAD's
exports). An Identity that is its graph's output is removed only when its input is
computed by a node of that same graph and is not already an output.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from converters.passes.base import PassResult, RulePass
from edgert.op_registry import is_default_domain


class DropoutAtInference(RewriteRuleClassBase):
    """``Dropout(x[, ratio[, training_mode]])`` -> ``x`` unless training_mode may be true."""

    def pattern(self, op, x):
        return op.Dropout(x, _allow_other_inputs=True, _outputs=["y"])

    def check(self, context, x, y) -> MatchResult:
        result = MatchResult()
        node = y.producer()
        if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
            return result.fail("the Dropout mask output is used")
        mode = node.inputs[2] if len(node.inputs) > 2 else None
        if mode is not None:
            value = mode.const_value
            if value is None:
                return result.fail("training_mode is not a constant")
            if bool(np.asarray(value.numpy()).reshape(-1)[0]):
                return result.fail("training_mode is true")
        return result

    def rewrite(self, op, x, y):
        return op.Identity(x)


class _ArithmeticNoOp(RewriteRuleClassBase):
    op_name = ""
    neutral = 0.0

    def pattern(self, op, x, c):
        return getattr(op, self.op_name)(x, c)

    def check(self, context, x, c) -> MatchResult:
        result = MatchResult()
        if c.const_value is None:
            return result.fail("operand is not a constant")
        value = c.const_value.numpy()
        if not np.all(value == self.neutral):
            return result.fail(f"constant is not {self.neutral:g}")
        if x.shape is None or x.dtype is None or x.dtype != c.dtype:
            return result.fail("shape or dtype of x unknown or different from the constant")
        if value.ndim > len(x.shape) or any(
                d != 1 and (not isinstance(xd, int) or d != xd)
                for d, xd in zip(reversed(value.shape), reversed(list(x.shape)))):
            return result.fail("the constant would broadcast x to a larger shape")
        return result

    def rewrite(self, op, x, c):
        return op.Identity(x)


class MulByOne(_ArithmeticNoOp):
    op_name, neutral = "Mul", 1.0


class AddZero(_ArithmeticNoOp):
    op_name, neutral = "Add", 0.0


class SubZero(_ArithmeticNoOp):
    op_name, neutral = "Sub", 0.0


class DivByOne(_ArithmeticNoOp):
    op_name, neutral = "Div", 1.0


_NOOP_RULES = [DropoutAtInference.rule(), *MulByOne.rule().commute(),
               *AddZero.rule().commute(), SubZero.rule(), DivByOne.rule()]


class RemoveDead(RulePass):
    name = "remove_dead"
    description = "remove unused nodes, Identity, inference Dropout and arithmetic no-ops"

    def rules(self):
        from onnxscript.rewriter.rules import common as R

        return _NOOP_RULES + [R.no_op_cast_rule, R.no_op_expand_rule, R.no_op_transpose_rule]

    def reported_rules(self):
        return [_NOOP_RULES[0]]  # "why is this Dropout still here?"

    def run(self, model: ir.Model) -> PassResult:
        """Changes = nodes removed (a no-op first becomes an Identity, then goes)."""
        start = _node_count(model)
        ir.passes.common.RemoveUnusedNodesPass()(model)
        unused = start - _node_count(model)
        result = super().run(model)
        eliminate_identities(model)
        ir.passes.common.RemoveUnusedNodesPass()(model)
        result.changes = start - _node_count(model)
        if unused:
            result.notes.append(f"removed {unused} unused node(s)")
        if result.changes - unused:
            result.notes.append(f"removed {result.changes - unused} Identity/no-op node(s)")
        return result


def eliminate_identities(model: ir.Model) -> int:
    """Remove ``y = Identity(x)`` nodes in every graph, keeping each graph's outputs its
    own values. Returns how many were removed."""
    removed = 0
    for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
        if _remove_identity(node):
            removed += 1
    return removed


def _remove_identity(node: ir.Node) -> bool:
    if node.op_type != "Identity" or not is_default_domain(node.domain) \
            or len(node.inputs) != 1 or len(node.outputs) != 1 or node.inputs[0] is None:
        return False
    x, y, graph = node.inputs[0], node.outputs[0], node.graph
    if y.is_graph_output():
        producer = x.producer()
        # x must be made here (not a graph input, an initializer or an outer-scope value)
        # and must not be an output already (a graph lists each output value once)
        if producer is None or producer.graph is not graph or x.is_graph_output():
            return False
    if x.shape is None:
        x.shape = y.shape
    if x.type is None:
        x.type = y.type
    is_output = y.is_graph_output()
    name = y.name
    ir.convenience.replace_all_uses_with(y, x, replace_graph_outputs=True)
    if is_output:
        y.name = None
        x.name = name
    graph.remove(node, safe=True)
    return True


def _node_count(model: ir.Model) -> int:
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))
