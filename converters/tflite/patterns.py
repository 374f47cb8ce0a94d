"""Multi-node patterns TFLite has one builtin for, folded before lowering.

* erf-GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))`` in any of the orders exporters
  write it, -> ``ai.edgert::Gelu`` (lowered to GELU; TFLite has no ERF kernel);
* ``HardSigmoid(x) * x`` and ``x * clip(x + 3, 0, 6) / 6`` -> ``HardSwish`` (onnxscript's
  own rules);
* ``Reshape(x, [N, G, -1]) -> InstanceNormalization -> Reshape(back to x's shape)``, how
  PyTorch exports GroupNorm, -> ``ai.edgert::GroupNorm`` (per-group scale/bias, like ONNX's
  GroupNormalization-18). Not a builtin, but lowered on channel-last data with no
  TRANSPOSE, where the three ops as written would need one before and one after (the
  ``[N, G, C/G*H*W]`` view has no channel-last form).

The matching is onnxscript's rewriter (commutation included), not hand-written.
It runs on a copy of the model, and only when the graph contains the ops a
pattern starts from, so the common case costs nothing and the caller's model is
never changed (other backends may convert the same object).
"""
from __future__ import annotations

import math

import numpy as np

EDGERT_DOMAIN = "ai.edgert"


def _wanted(ops: set) -> bool:
    return ("Erf" in ops or "HardSigmoid" in ops or {"Clip", "Div", "Mul"} <= ops
            or "InstanceNormalization" in ops)


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


def _group_norm_rules():
    from onnxscript.rewriter import pattern

    class GroupNormFromInstanceNorm(pattern.RewriteRuleClassBase):
        def pattern(self, op, x, shape_in, scale, bias, shape_out):
            grouped = op.Reshape(x, shape_in, _outputs=["grouped"])
            normed = op.InstanceNormalization(grouped, scale, bias, _outputs=["normed"])
            return op.Reshape(normed, shape_out, _outputs=["out"])

        def check(self, context, x, scale, bias, grouped, out, **_):
            result = pattern.MatchResult()
            xs, gs, ys = x.shape, grouped.shape, out.shape
            if xs is None or gs is None or ys is None or len(xs) < 3 or len(gs) != 3:
                return result.fail("shapes unknown, or not [N, C, ...] -> [N, G, -1]")
            if list(ys) != list(xs) or gs[0] != xs[0]:
                return result.fail("the second Reshape does not restore the input's shape")
            dims = [d for d in list(xs[1:]) + [gs[1], gs[2]]]
            if not all(isinstance(d, int) for d in dims):
                return result.fail("channels and spatial dims must be static")
            if xs[1] % gs[1] or int(np.prod(xs[1:])) != gs[1] * gs[2]:
                return result.fail("the first Reshape does not split channels into groups")
            if scale.const_value is None or bias.const_value is None:
                return result.fail("scale and bias must be constant")
            return result

        def rewrite(self, op, x, scale, bias, grouped, normed, **_):
            eps = normed.producer().attributes.get_float("epsilon", 1e-5)
            return op.GroupNorm(x, scale, bias, num_groups=int(grouped.shape[1]),
                                epsilon=float(eps), _domain=EDGERT_DOMAIN)

    return [GroupNormFromInstanceNorm().rule()]


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
    if "InstanceNormalization" in ops:
        rules += _group_norm_rules()
    copy = rewrite(copy, pattern_rewrite_rules=rules)
    if any(n.domain == EDGERT_DOMAIN for n in copy.graph):
        copy.opset_imports.setdefault(EDGERT_DOMAIN, 1)
    return copy
