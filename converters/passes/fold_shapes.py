"""Shape-chain folding: make shape computations constant and collapse chains of
layout ops.

Constant folding already evaluates ``Shape -> Gather -> Unsqueeze -> Concat``
when the shape is static. What is left are chains around a *symbolic* dim (a
dynamic batch) and back-to-back layout ops. onnxscript's rules handle them:
a Reshape whose result shape is known up to one symbolic dim gets a constant
target shape (``[-1, 1280]``), Reshape(Reshape), Unsqueeze(Unsqueeze),
Transpose(Transpose), Cast(Cast), chained Slices, Expand before a broadcasting
binary op, and Squeeze+Reshape of 1-D values collapse into one op or none.
"""
from __future__ import annotations

from converters.passes.base import RulePass


class FoldShapes(RulePass):
    name = "fold_shapes"
    description = "constant Reshape targets, collapse Reshape/Unsqueeze/Transpose/Cast/Slice chains"

    def rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.materialize_reshape_shape_rule, R.reshape_reshape_rule,
                R.squeeze_reshape_1d_rule, R.unsqueeze_unsqueeze_rule,
                R.transpose_transpose_rule, R.cast_cast_rule, R.collapse_slice_rule,
                R.collapse_slice2_rule, R.cast_constant_of_shape_rule,
                R.cast_constant_of_shape_without_value_rule, *R.expand_before_binary_op_rules]

    def reported_rules(self):
        return []  # a Reshape left as it is needs no explanation
