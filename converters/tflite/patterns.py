"""Multi-node patterns TFLite has one builtin for, folded before lowering.

* erf-GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))`` in any of the orders exporters
  write it, -> ``ai.edgert::Gelu`` (lowered to GELU; TFLite has no ERF kernel);
* ``HardSigmoid(x) * x`` and ``x * clip(x + 3, 0, 6) / 6`` -> ``HardSwish`` (onnxscript's
  own rules).

The matching is onnxscript's rewriter (commutation included), not hand-written.
It runs on a copy of the model, and only when the graph contains the ops a
pattern starts from, so the common case costs nothing and the caller's model is
never changed (other backends may convert the same object).
"""
from __future__ import annotations

import math

EDGERT_DOMAIN = "ai.edgert"


def _wanted(ops: set) -> bool:
    return "Erf" in ops or "HardSigmoid" in ops or {"Clip", "Div", "Mul"} <= ops


def _gelu_rules():
    from onnxscript.rewriter import pattern

    s2 = math.sqrt(2.0)

    def p1(op, x):
        return 0.5 * (x * (op.Erf(x / s2) + 1.0))

    def p2(op, x):
        return x * (0.5 * (op.Erf(x / s2) + 1.0))

    def p3(op, x):
        return (x * (op.Erf(x / s2) + 1.0)) * 0.5

    def p4(op, x):
        return (x * 0.5) * (op.Erf(x / s2) + 1.0)

    def p5(op, x):
        return (x * (op.Erf(x * (1.0 / s2)) + 1.0)) * 0.5

    def gelu(op, x):
        return op.Gelu(x, _domain=EDGERT_DOMAIN)

    rules = []
    for p in (p1, p2, p3, p4, p5):
        rules.extend(pattern.RewriteRule(p, gelu).commute())   # every operand order
    return rules


def _hardswish_rules():
    from onnxscript.rewriter.rules.common import _fuse_hardswish

    return list(_fuse_hardswish.fuse_hardswish_rules().rules)


def fold_patterns(model):
    """``model`` itself if no pattern can apply, else a rewritten copy."""
    ops = {n.op_type for n in model.graph}
    if not _wanted(ops):
        return model
    from onnxscript.rewriter import rewrite

    copy = model.clone()          # nodes and values are new; tensors are shared
    rules = []
    if "Erf" in ops:
        rules += _gelu_rules()
    if ops & {"HardSigmoid", "Clip"}:
        rules += _hardswish_rules()
    copy = rewrite(copy, pattern_rewrite_rules=rules)
    if any(n.domain == EDGERT_DOMAIN for n in copy.graph):
        copy.opset_imports.setdefault(EDGERT_DOMAIN, 1)
    return copy
