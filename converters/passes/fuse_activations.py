"""Activation fusion, in the only sense plain ONNX allows.

ONNX has no "Conv with a fused ReLU" op, and the optimized ONNX must stay plain
ONNX because MNN's converter reads it. So this pass does two things:

1. Rewrites activations into the forms backends fuse: ``Relu(Relu(x))``,
   ``Clip(Clip(x))``, ``Clip(Relu(x))`` merge into one op; ``Max``/``Min`` with
   constant bounds become ``Clip``; ``x * HardSigmoid(x)`` (with alpha 1/6, beta
   1/2) becomes ``HardSwish`` (onnxscript's rules).
2. Marks each Conv/ConvTranspose/Gemm/MatMul whose only consumer is a Relu or a
   Clip with constant bounds: ``metadata_props["edgert.fused_activation"]`` gets
   ``RELU``, ``RELU6``, ``RELU_N1_TO_1`` or ``CLIP(lo,hi)`` (TFLite
   fuses only the first three; other bounds stay a separate op). The
   Relu node stays in the graph (ONNX semantics unchanged); the TFLite writer
   reads the mark and emits one op with a fused activation, and MNN's converter
   fuses Conv+ReLU/ReLU6 on its own. A mark is refused, with the reason, when
   the producer's output has other consumers or is a graph output.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import onnx_ir as ir

from converters.passes.base import PassResult, Refusal, RulePass, node_label
from edgert.fused_activations import fused_code
from edgert.op_registry import is_default_domain

FUSED_ACTIVATION_KEY = "edgert.fused_activation"
PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def activation_code(act: ir.Node) -> Optional[str]:
    """The fused-activation name for a Relu/Clip node (``edgert.fused_activations``'s TFLite
    names; ``CLIP(lo,hi)`` for other constant bounds), or None when it is not one."""
    if act.op_type != "Clip":
        return fused_code(act.op_type)
    bounds = []
    for v in list(act.inputs[1:3]) + [None] * (2 - len(act.inputs[1:3])):
        if v is None:
            bounds.append(None)
        elif v.const_value is None:
            return None
        else:
            bounds.append(float(np.asarray(v.const_value.numpy()).reshape(())))
    lo, hi = bounds
    return fused_code("Clip", lo, hi) or f"CLIP({lo},{hi})"


class FuseActivations(RulePass):
    name = "fuse_activations"
    description = ("merge activation chains, Max/Min->Clip, x*HardSigmoid(x)->HardSwish; "
                   "mark Conv/Gemm/MatMul + Relu/Clip for backends to fuse")

    def rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.successive_relu_rule, R.successive_clip_rule, R.successive_clip_relu_rule,
                R.successive_relu_clip_rule, R.max_max_rule, R.min_min_rule, R.max_min_rule,
                R.min_max_rule, *R.fuse_hardswish_rules().rules]

    def run(self, model: ir.Model) -> PassResult:
        result = super().run(model)
        marked, refusals = self._mark(model)
        result.changes += marked
        result.refusals.extend(refusals)
        if marked:
            result.notes.append(f"marked {marked} producer(s) with their fused activation")
        return result

    def _mark(self, model: ir.Model):
        marked = 0
        refusals: List[Refusal] = []
        graph_outputs = set(id(v) for v in model.graph.outputs)
        for node in model.graph:
            if node.op_type not in PRODUCERS or not is_default_domain(node.domain):
                continue
            out = node.outputs[0]
            users = [u for u, _ in out.uses()]
            acts = [u for u in users if activation_code(u) is not None]
            if not acts:
                node.metadata_props.pop(FUSED_ACTIVATION_KEY, None)
                continue
            reason = ""
            if id(out) in graph_outputs:
                reason = "its output is a graph output"
            elif len(users) > 1:
                reason = f"its output feeds {len(users)} nodes, not only the activation"
            if reason:
                node.metadata_props.pop(FUSED_ACTIVATION_KEY, None)
                refusals.append(Refusal("mark_fused_activation", node_label(node),
                                        node.op_type, reason))
                continue
            code = activation_code(acts[0])
            if node.metadata_props.get(FUSED_ACTIVATION_KEY) != code:
                node.metadata_props[FUSED_ACTIVATION_KEY] = code
                marked += 1
        return marked, refusals
