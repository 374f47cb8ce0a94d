"""Constant folding: evaluate every node whose inputs are all known, including
``Shape`` of a statically shaped value, and replace it by its result.

onnxscript's ``FoldConstantsPass`` does this well (it runs ONNX shape inference
node by node and evaluates with the ONNX reference evaluator), so this module
only adapts it: the size limits below keep folding from materializing large
tensors (a folded ``Expand`` of a weight could multiply the file size).
"""
from __future__ import annotations

import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult

INPUT_SIZE_LIMIT = 8 * 1024 * 1024     # elements: fold ops whose inputs are at most this big
OUTPUT_SIZE_LIMIT = 8 * 1024 * 1024    # elements: and whose outputs are at most this big


class FoldConstants(GraphPass):
    name = "fold_constants"
    description = "evaluate nodes whose inputs are constants (shape inference included)"

    def run(self, model: ir.Model) -> PassResult:
        from onnxscript.optimizer._constant_folding import FoldConstantsPass

        before = _signature(model)
        FoldConstantsPass(shape_inference=True, input_size_limit=INPUT_SIZE_LIMIT,
                          output_size_limit=OUTPUT_SIZE_LIMIT)(model)
        ir.passes.common.RemoveUnusedNodesPass()(model)
        after = _signature(model)
        return PassResult(changes=_difference(before, after))


def _signature(model: ir.Model):
    return [(n.op_type, tuple(id(v) for v in n.inputs)) for n in model.graph]


def _difference(before, after) -> int:
    """Nodes that disappeared or appeared (folding replaces nodes by initializers)."""
    if before == after:
        return 0
    b, a = set(before), set(after)
    return max(len(b - a), len(a - b), 1)
