"""Constant folding: evaluate every node whose inputs are all known, including
``Shape`` of a statically shaped value, and replace it by its result.

onnxscript's ``FoldConstantsPass`` does this well (it runs ONNX shape inference
node by node and evaluates with the ONNX reference evaluator), so this module
only adapts it: the size limits below keep folding from materializing large
tensors (a folded ``Expand`` of a weight could multiply the file size).
onnxscript never folds ``ConstantOfShape`` (its blacklist, to keep models small); a
constant-shaped one within the same size limit is folded here, since a TFLite graph
needs the value as a constant and the tensors involved (attention masks) are small.
"""
from __future__ import annotations

import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult
from edgert.op_registry import is_default_domain

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
        if _fold_constant_of_shape(model):   # then what it fed may fold in turn
            FoldConstantsPass(shape_inference=True, input_size_limit=INPUT_SIZE_LIMIT,
                              output_size_limit=OUTPUT_SIZE_LIMIT)(model)
        ir.passes.common.RemoveUnusedNodesPass()(model)
        after = _signature(model)
        return PassResult(changes=_difference(before, after))


def _fold_constant_of_shape(model: ir.Model) -> int:
    import numpy as np

    folded = 0
    for node in list(model.graph):
        if node.op_type != "ConstantOfShape" or not is_default_domain(node.domain):
            continue
        shape = ir.convenience.get_const_tensor(node.inputs[0]) if node.inputs else None
        if shape is None:
            continue
        dims = [int(d) for d in np.asarray(shape.numpy()).reshape(-1)]
        if any(d < 0 for d in dims) or int(np.prod(dims)) > OUTPUT_SIZE_LIMIT:
            continue
        attr = node.attributes.get("value")
        fill = attr.value.numpy().reshape(-1)[0] if attr is not None else np.float32(0)
        out = node.outputs[0]
        value = ir.Value(name=out.name, shape=ir.Shape(dims), type=out.type,
                         const_value=ir.tensor(np.full(dims, fill, dtype=np.asarray(fill).dtype),
                                               name=out.name))
        out.name = None
        out.replace_all_uses_with(value, replace_graph_outputs=True)
        model.graph.remove(node, safe=True)
        model.graph.register_initializer(value)
        folded += 1
    return folded


def _signature(model: ir.Model):
    return [(n.op_type, tuple(id(v) for v in n.inputs)) for n in model.graph]


def _difference(before, after) -> int:
    """Nodes that disappeared or appeared (folding replaces nodes by initializers)."""
    if before == after:
        return 0
    b, a = set(before), set(after)
    return max(len(b - a), len(a - b), 1)
