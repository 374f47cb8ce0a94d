"""Graph passes on onnx-ir, one module per pass, and the declared pipeline.

    from converters.passes import optimize
    report = optimize(ir_model)          # in place; report.summary() for people

The pipeline below runs round after round until nothing changes. Every pass
leaves the graph plain, valid ONNX with the same outputs (tests compare ONNX
Runtime before and after each pass), because MNN's converter reads it.

Order matters only for speed, not for the result: Einsum is decomposed first so its
constant operands fold like any weight; constants fold next so the
pattern passes see constant weights and shapes; BN folds before MatMul+Add so a
folded Linear+BN still becomes a Gemm; activation marks come after every
rewrite that can replace the producing Conv; tidy runs last in each round.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult, Refusal, op_counts
from converters.passes.decompose_einsum import DecomposeEinsum
from converters.passes.div_to_mul import DivToMul
from converters.passes.fold_batchnorm import FoldBatchNorm
from converters.passes.fold_constants import FoldConstants
from converters.passes.fold_control_flow import FoldControlFlow
from converters.passes.fold_shapes import FoldShapes
from converters.passes.fuse_activations import FUSED_ACTIVATION_KEY, FuseActivations
from converters.passes.fuse_matmul_add import FuseMatMulAdd
from converters.passes.fuse_pad_conv import FusePadIntoConv
from converters.passes.inline_functions import InlineFunctions
from converters.passes.manager import PassEffect, PassReport, run_passes
from converters.passes.remove_dead import RemoveDead
from converters.passes.tidy import Tidy

__all__ = ["PIPELINE", "optimize", "get_pass", "pass_names", "GraphPass", "PassResult",
           "PassReport", "PassEffect", "Refusal", "op_counts", "FUSED_ACTIVATION_KEY"]

# The declared pipeline, in order. Adding a pass: one module, one line here.
PIPELINE: List[type] = [
    InlineFunctions,
    DecomposeEinsum,
    FoldConstants,
    FoldControlFlow,
    RemoveDead,
    DivToMul,
    FoldShapes,
    FoldBatchNorm,
    FusePadIntoConv,
    FuseMatMulAdd,
    FuseActivations,
    Tidy,
]


def _registry():
    reg = {}
    for cls in PIPELINE:
        if cls.name in reg:
            raise ValueError(f"pass {cls.name!r} declared twice")
        reg[cls.name] = cls
    return reg


def pass_names() -> List[str]:
    return [cls.name for cls in PIPELINE]


def get_pass(name: str) -> GraphPass:
    reg = _registry()
    if name not in reg:
        from converters.errors import ConversionError
        from converters.options import suggest
        raise ConversionError(f"unknown pass {name!r}{suggest(name, list(reg))}; passes: "
                              f"{', '.join(reg)}")
    return reg[name]()


def optimize(model: ir.Model, passes: Optional[Sequence] = None,
             max_rounds: int = 6) -> PassReport:
    """Run the pipeline (or ``passes``: names or GraphPass objects) on ``model`` in place."""
    chosen = [get_pass(p) if isinstance(p, str) else p
              for p in (passes if passes is not None else pass_names())]
    return run_passes(model, chosen, max_rounds=max_rounds)
