"""Tidy the graph for writing: Constant nodes become initializers, identical
initializers are shared, and identical subexpressions computed twice are
computed once (onnx-ir's LiftConstantsToInitializers, DeduplicateInitializers
and CommonSubexpressionElimination passes)."""
from __future__ import annotations

import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult


class Tidy(GraphPass):
    name = "tidy"
    description = "Constants to initializers, deduplicate initializers, common subexpressions"

    def run(self, model: ir.Model) -> PassResult:
        common = ir.passes.common
        nodes0, inits0 = _sizes(model)
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
        nodes1, inits1 = _sizes(model)
        common.DeduplicateInitializersPass()(model)
        nodes2, inits2 = _sizes(model)
        common.CommonSubexpressionEliminationPass()(model)
        common.RemoveUnusedNodesPass()(model)
        nodes3, _ = _sizes(model)
        lifted, deduped, cse = nodes0 - nodes1, inits1 - inits2, nodes2 - nodes3
        notes = [f"{what}: {n}" for what, n in (("constants lifted", lifted),
                                                ("initializers shared", deduped),
                                                ("common subexpressions", cse)) if n]
        return PassResult(changes=lifted + deduped + cse, notes=notes)


def _sizes(model: ir.Model):
    return len(model.graph), len(model.graph.initializers)
