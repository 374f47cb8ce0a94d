"""Multi-node patterns TFLite has one builtin for, folded before lowering.

* erf-GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))`` in any of the orders exporters
  write it, -> ``ai.edgert::Gelu`` (lowered to GELU; TFLite has no ERF kernel);
* ``HardSigmoid(x) * x`` and ``x * clip(x + 3, 0, 6) / 6`` -> ``HardSwish`` (onnxscript's
  own rules), and the same with the divide already a multiply by 1/6 (what our
  ``div_to_mul`` pass and Paddle exports leave: PP-OCR's ``x * relu6(x + 3) * 0.1667``
  was 3-4 ops, now one HARD_SWISH);
* ``Reshape(x, [N, G, -1]) -> InstanceNormalization -> Reshape(back to x's shape)``, how
  PyTorch exports GroupNorm, -> ``ai.edgert::GroupNorm`` (per-group scale/bias, like ONNX's
  GroupNormalization-18). Not a builtin, but lowered on channel-last data with no
  TRANSPOSE, where the three ops as written would need one before and one after (the
  ``[N, G, C/G*H*W]`` view has no channel-last form);
* ``Conv -> [unary activations] -> DepthToSpace(CRD)`` (PixelShuffle after a conv) ->
  the conv's output channels permuted from CRD to DCR order and ``mode=DCR``, which is
  TFLite's DEPTH_TO_SPACE: exact (a permutation of weights), one op instead of
  RESHAPE + TRANSPOSE + RESHAPE. Plain Python: it creates new weights, which a rewrite
  rule does not do.

The matching is onnxscript's rewriter (commutation included), not hand-written.
It runs on a copy of the model, and only when the graph contains the ops a
pattern starts from, so the common case costs nothing and the caller's model is
never changed (other backends may convert the same object).
"""
from __future__ import annotations

import math

import numpy as np

from edgert.op_registry import EDGERT_DOMAIN, is_default_domain


def _wanted(ops: set) -> bool:
    return ("Erf" in ops or "HardSigmoid" in ops or {"Clip", "Div", "Mul"} <= ops
            or {"Clip", "Add", "Mul"} <= ops or "InstanceNormalization" in ops
            or "DepthToSpace" in ops)


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
    from onnxscript.rewriter import pattern
    from onnxscript.rewriter._ir_utils import is_singleton_value
    from onnxscript.rewriter.rules.common import _fuse_hardswish

    def _relu6_of_x_plus_3(result, clip_min, clip_max, bias, scale):
        checks = ((clip_min, 0.0, "clip min 0"), (clip_max, 6.0, "clip max 6"),
                  (bias, 3.0, "offset 3"), (scale, 1.0 / 6.0, "scale 1/6"))
        for value, want, what in checks:
            if not is_singleton_value(value, want, rtol=1e-4):
                return result.fail(f"needs {what}")
        return result

    class HardSigmoidTimesSixth(pattern.RewriteRuleClassBase):
        """clip(x + 3, 0, 6) * (1/6) -> HardSigmoid(1/6, 1/2) (then x * it is a HardSwish)."""

        def pattern(self, op, x, clip_min, clip_max, bias, scale):
            return op.Clip(x + bias, clip_min, clip_max) * scale

        def check(self, context, x, clip_min, clip_max, bias, scale, **_):
            return _relu6_of_x_plus_3(pattern.MatchResult(), clip_min, clip_max, bias, scale)

        def rewrite(self, op, x, **_):
            return op.HardSigmoid(x, alpha=1.0 / 6.0, beta=0.5)

    class HardSwishTimesSixth(pattern.RewriteRuleClassBase):
        """(x * clip(x + 3, 0, 6)) * (1/6) -> HardSwish."""

        def pattern(self, op, x, clip_min, clip_max, bias, scale):
            return (x * op.Clip(x + bias, clip_min, clip_max)) * scale

        def check(self, context, x, clip_min, clip_max, bias, scale, **_):
            return _relu6_of_x_plus_3(pattern.MatchResult(), clip_min, clip_max, bias, scale)

        def rewrite(self, op, x, **_):
            return op.HardSwish(x)

    ours = pattern.RewriteRuleSet([HardSwishTimesSixth().rule(), HardSigmoidTimesSixth().rule()],
                                  commute=True)
    return list(ours.rules) + list(_fuse_hardswish.fuse_hardswish_rules().rules)


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


# metadata of a weight whose output channels were reordered: the original's name, the order
PERMUTED_FROM = "edgert.permuted_from"
CHANNEL_ORDER = "edgert.channel_order"

# unary ops with no per-channel parameter: a channel permutation commutes with them
_CHANNEL_FREE = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Clip",
                 "Elu", "Selu", "Celu", "Gelu", "Softplus", "Mish", "Identity"}


def _crd_conv(node):
    """The Conv whose output reaches the CRD DepthToSpace ``node`` only through unary
    channel-free ops, each read once; ``None`` when there is none."""
    from converters.layout.graph import is_const

    v = node.inputs[0]
    while True:
        if v.is_graph_output() or len(v.uses()) != 1:
            return None
        prod = v.producer()
        if prod is None or not is_default_domain(prod.domain):
            return None
        if prod.op_type == "Conv":
            weights = prod.inputs[1:3]
            return prod if all(w is None or is_const(w) for w in weights) else None
        if prod.op_type not in _CHANNEL_FREE or any(
                i is not None and not is_const(i) for i in prod.inputs[1:]):
            return None
        v = prod.inputs[0]


def crd_to_dcr(model) -> int:
    """Make CRD DepthToSpace after a conv DCR by permuting the conv's output channels."""
    import onnx_ir as ir

    from converters.layout.graph import const_of

    changed = 0
    for node in list(model.graph):
        if node.op_type != "DepthToSpace" or node.attributes.get_string("mode", "DCR") != "CRD":
            continue
        conv = _crd_conv(node)
        if conv is None:
            continue
        b = node.attributes.get_int("blocksize")
        channels = const_of(conv.inputs[1]).shape[0]
        c = channels // (b * b)
        # DCR channel (i*b + j)*c + k holds what CRD channel k*b*b + i*b + j held
        order = np.array([k * b * b + ij for ij in range(b * b) for k in range(c)])
        for idx in (1, 2):
            w = conv.inputs[idx] if len(conv.inputs) > idx else None
            if w is None:
                continue
            name = f"{w.name}_dcr"
            while name in model.graph.initializers:
                name += "_"
            new = ir.Value(name=name,
                           const_value=ir.tensor(np.ascontiguousarray(const_of(w)[order])))
            new.shape, new.dtype = w.shape, w.dtype
            # full int8 finds the table's entry for the weight under its old name
            new.metadata_props[PERMUTED_FROM] = w.name
            new.metadata_props[CHANNEL_ORDER] = ",".join(map(str, order))
            model.graph.register_initializer(new)
            conv.replace_input_with(idx, new)
        node.attributes["mode"] = ir.AttrString("mode", "DCR")
        changed += 1
    return changed


def fold_patterns(model):
    """``model`` itself if no pattern can apply, else a rewritten copy."""
    ops = {n.op_type for n in model.graph}
    if not _wanted(ops):
        return model
    from onnxscript.rewriter import rewrite

    from converters.passes.base import root_filtered

    copy = model.clone()          # nodes and values are new; tensors are shared
    rules = []
    if "Erf" in ops:
        rules += _gelu_rules()
    if ops & {"HardSigmoid", "Clip"}:
        rules += _hardswish_rules()
    if "InstanceNormalization" in ops:
        rules += _group_norm_rules()
    if rules:    # each rule tried only at its root op (passes.base.RootFiltered)
        copy = rewrite(copy, pattern_rewrite_rules=root_filtered(rules))
    if "DepthToSpace" in ops:
        crd_to_dcr(copy)
    if any(n.domain == EDGERT_DOMAIN for n in copy.graph):
        copy.opset_imports.setdefault(EDGERT_DOMAIN, 1)
    return copy
