"""Inline model-local functions, so every later pass and every backend sees plain
nodes (the dynamo exporter can emit functions). onnx-ir's InlinePass does it."""
from __future__ import annotations

import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult


class InlineFunctions(GraphPass):
    name = "inline_functions"
    description = "inline model-local functions"

    def run(self, model: ir.Model) -> PassResult:
        if not model.functions:
            return PassResult()
        n = len(model.functions)
        ir.passes.common.InlinePass()(model)
        ir.passes.common.RemoveUnusedFunctionsPass()(model)
        return PassResult(changes=n, notes=[f"inlined {n} function(s)"])
