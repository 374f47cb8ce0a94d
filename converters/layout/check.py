"""Per-op layout rules: which stored layouts an op can take, and which it gives.

Each ONNX op (domain, type) maps to one rule in an ``edgert.op_registry`` table
(registered once; a second registration is an error). A rule answers two questions for
the planner in ``mark.py``:

* ``backward(node, out_wishes)``: given the layouts the consumers would accept for
  the node's outputs (a *wish*: acceptable layouts, best first), which would it
  accept for its inputs? (a hint only)
* ``forward(node, in_perms, out_wishes)``: given the layouts its inputs actually
  have, which must they have (a difference costs a TRANSPOSE), and which do its
  outputs get?

Rule families: *spatial* ops (Conv, pools, Resize) need channel-last; *elementwise*
and *axis* ops (Concat, Split, Slice, Pad, reductions) follow their input and have
their axes rewritten; *last-axis* ops (Softmax, LayerNormalization) need their
axes stored last; Transpose and the Reshape family move layouts around (often for
free); everything else (*logical*: MatMul, Gemm, LSTM, unknown ops) needs the
source layout. Constants never constrain anything: lowerings transpose them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from converters.layout import rewrite
from converters.layout.graph import attr, const_of, is_const, rank_of, shape_of
from converters.layout.perm import (
    Perm, after_transpose, before_transpose, channel_last, drop_axes, identity, insert_axis)
from edgert.op_registry import EDGERT_DOMAIN, OpRegistry, default_opset, is_default_domain

Wish = Optional[Tuple[Perm, ...]]       # acceptable layouts, best first; None = no opinion


@dataclass
class Decision:
    inputs: List[Optional[Perm]]            # required stored layout per input (None: constant/absent)
    outputs: List[Optional[Perm]]
    col_perm: Optional[np.ndarray] = None   # output 0 is an NHWC flatten read by FC layers
    materialize: bool = False               # a Transpose that moves data (emits TRANSPOSE)


class LayoutRule:
    """The default (*logical*): every runtime input and output in the source layout."""
    kind = "logical"

    def backward(self, node, out_wishes: List[Wish]) -> List[Wish]:
        return [_only(_ident(v)) for v in node.inputs]

    def forward(self, node, in_perms, out_wishes) -> Decision:
        return Decision([_ident(v) for v in node.inputs], [_ident(v) for v in node.outputs])


_RULES: OpRegistry[LayoutRule] = OpRegistry("layout rule")
_LOGICAL = LayoutRule()


def register(*op_types: str, domain: str = ""):
    """Class decorator: the rule (an instance of the class) for ``op_types`` in ``domain``."""
    def deco(cls):
        rule = cls()
        for op in op_types:
            _RULES.add(op, rule, domain=domain, source=f"{cls.__module__}.{cls.__qualname__}")
        return cls
    return deco


def rule_for(node) -> LayoutRule:
    return _RULES.of_node(node) or _LOGICAL


def layout_kinds() -> Dict[str, str]:
    """ONNX op (``domain::Op`` outside the default domain) -> rule family, for documentation
    and ``edgert ops``."""
    return {r.key.label: r.value.kind
            for r in sorted(_RULES.registrations(), key=lambda r: r.key.label)}


# -- helpers --------------------------------------------------------------------------

def _ident(value) -> Optional[Perm]:
    if value is None or is_const(value):
        return None
    r = rank_of(value)
    return identity(r) if r is not None else None


def _only(perm: Optional[Perm]) -> Wish:
    return None if perm is None else (perm,)


def _dedupe(perms) -> Wish:
    out = []
    for p in perms:
        if p is not None and p not in out:
            out.append(p)
    return tuple(out) or None


def node_opset(node) -> int:
    """The default-domain opset the node's graph imports."""
    graph = node.graph
    return default_opset(graph.opset_imports if graph is not None else {}, 13)


def _runtime_inputs(node) -> List[int]:
    return [i for i, v in enumerate(node.inputs) if v is not None and not is_const(v)]


def combine_wishes(wishes: Sequence[Wish]) -> Wish:
    """One wish for a value from its consumers': the layouts most consumers accept,
    in order of first mention."""
    known = [w for w in wishes if w]
    if not known:
        return None
    score: Counter = Counter(p for w in known for p in set(w))
    best = max(score.values())
    order = [p for w in known for p in w]
    return _dedupe(p for p in order if score[p] == best)


def pick(perms: Sequence[Optional[Perm]], wish: Wish) -> Optional[Perm]:
    """The first of ``perms`` the wish accepts, else the first known one."""
    known = [p for p in perms if p is not None]
    for p in known:
        if wish and p in wish:
            return p
    return known[0] if known else None


# -- rule families --------------------------------------------------------------------

@register("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
          "GlobalMaxPool", "LpPool", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
          "BatchNormalization", "InstanceNormalization", "LRN", "GroupNormalization")
@register("GroupNorm", domain=EDGERT_DOMAIN)
class SpatialRule(LayoutRule):
    """Runs on channel-last data (TFLite kernels are NHWC)."""
    kind = "spatial"

    def backward(self, node, out_wishes):
        wishes: List[Wish] = [None] * len(node.inputs)
        r = rank_of(node.inputs[0])
        if r is not None and not is_const(node.inputs[0]):
            wishes[0] = (channel_last(r),)
        return wishes

    def forward(self, node, in_perms, out_wishes):
        ins: List[Optional[Perm]] = [None] * len(node.inputs)
        r = rank_of(node.inputs[0])
        cl = channel_last(r) if r is not None else None
        ins[0] = cl
        return Decision(ins, [cl if v is not None else None for v in node.outputs])


@register("Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip",
          "Elu", "Selu", "Gelu", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs",
          "Floor", "Ceil", "Round", "Sin", "Cos", "Softplus", "Sign", "Not", "Cast", "Identity",
          "Dropout", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal",
          "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Where", "Mod",
          "Atan", "Asin", "Acos",
          "Concat", "Split", "Slice", "Pad", "Tile", "CumSum")
@register("Gelu", domain=EDGERT_DOMAIN)
class FollowRule(LayoutRule):
    """Elementwise ops and ops whose axis attributes the lowering rewrites (Concat, Split,
    Slice, Pad, Tile): outputs keep the inputs' layout; constants are transposed to it."""
    kind = "follow"

    def backward(self, node, out_wishes):
        out_rank = rank_of(node.outputs[0])
        return [out_wishes[0] if (v is not None and not is_const(v) and rank_of(v) == out_rank)
                else None for v in node.inputs]

    def forward(self, node, in_perms, out_wishes):
        live = _runtime_inputs(node)
        out_rank = rank_of(node.outputs[0])
        if not live or out_rank is None or any(rank_of(node.inputs[i]) != out_rank for i in live):
            return LayoutRule.forward(self, node, in_perms, out_wishes)
        perm = pick([in_perms[i] for i in live], out_wishes[0])
        ins = [perm if i in live else None for i in range(len(node.inputs))]
        return Decision(ins, [perm for _ in node.outputs])


@register("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
          "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin")
class ReduceRule(LayoutRule):
    """Axes are rewritten; without keepdims the reduced dims leave the layout."""
    kind = "reduce"

    @staticmethod
    def axes(node) -> Optional[List[int]]:
        r = rank_of(node.inputs[0])
        if node.op_type in ("ArgMax", "ArgMin"):
            axes = [attr(node, "axis", 0)]
        elif len(node.inputs) > 1 and node.inputs[1] is not None:
            c = const_of(node.inputs[1])
            if c is None:
                return None
            axes = [int(a) for a in c.reshape(-1)]
        else:
            axes = attr(node, "axes", None)
        if not axes:
            if attr(node, "noop_with_empty_axes", 0):
                return []
            axes = list(range(r))
        return sorted(a % r for a in axes)

    def backward(self, node, out_wishes):
        wishes: List[Wish] = [None] * len(node.inputs)
        if attr(node, "keepdims", 1):
            wishes[0] = out_wishes[0]
        return wishes

    def forward(self, node, in_perms, out_wishes):
        axes = self.axes(node)
        if axes is None or in_perms[0] is None:
            return LayoutRule.forward(self, node, in_perms, out_wishes)
        perm = in_perms[0]
        ins = [perm] + [None] * (len(node.inputs) - 1)
        out = perm if attr(node, "keepdims", 1) else drop_axes(perm, axes)
        return Decision(ins, [out])


@register("Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "LpNormalization", "TopK")
class LastAxesRule(LayoutRule):
    """The op's axes (axis.. for LayerNormalization and pre-13 Softmax) must be stored last
    (LayerNormalization's in any order: C, H, W of an NHWC tensor are already last)."""
    kind = "last-axis"

    @staticmethod
    def tail(node, rank: int) -> List[int]:
        if node.op_type == "LayerNormalization":
            return list(range(attr(node, "axis", -1) % rank, rank))
        if node.op_type in ("LpNormalization", "TopK"):
            return [attr(node, "axis", -1) % rank]
        opset = node_opset(node)
        a = attr(node, "axis", -1 if opset >= 13 else 1) % rank
        return [a] if opset >= 13 else list(range(a, rank))

    def _fit(self, node, perm: Perm) -> Perm:
        tail = self.tail(node, len(perm))
        if (node.op_type == "LayerNormalization" and len(tail) > 1
                and set(perm[len(perm) - len(tail):]) == set(tail)):
            return tuple(perm)    # normalized as a set: their stored order does not matter
        return tuple([p for p in perm if p not in tail] + tail)

    def backward(self, node, out_wishes):
        wishes: List[Wish] = [None] * len(node.inputs)
        r = rank_of(node.inputs[0])
        if r is not None:
            wishes[0] = _dedupe(self._fit(node, p) for p in (out_wishes[0] or (identity(r),)))
        return wishes

    def forward(self, node, in_perms, out_wishes):
        if in_perms[0] is None:
            return LayoutRule.forward(self, node, in_perms, out_wishes)
        perm = self._fit(node, in_perms[0])
        ins = [perm] + [None] * (len(node.inputs) - 1)
        return Decision(ins, [perm if v is not None else None for v in node.outputs])


@register("Transpose")
class TransposeRule(LayoutRule):
    """Free when the consumers accept the relabelled layout; otherwise one TRANSPOSE that
    lands directly on the layout the consumers want."""
    kind = "transpose"

    @staticmethod
    def perm(node) -> List[int]:
        r = rank_of(node.inputs[0])
        return list(attr(node, "perm", None) or reversed(range(r)))

    def backward(self, node, out_wishes):
        if not out_wishes[0]:
            return [None]
        return [_dedupe(before_transpose(p, self.perm(node)) for p in out_wishes[0])]

    def forward(self, node, in_perms, out_wishes):
        if in_perms[0] is None:
            return LayoutRule.forward(self, node, in_perms, out_wishes)
        free = after_transpose(in_perms[0], self.perm(node))
        wish = out_wishes[0]
        if not wish or free in wish:
            return Decision([in_perms[0]], [free])
        return Decision([in_perms[0]], [wish[0]], materialize=True)


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
class ReshapeRule(LayoutRule):
    """Free when the merged/split dim groups are stored in order; an NHWC flatten read only by
    FC layers stays NHWC and the FC weights are permuted instead (``col_perm``)."""
    kind = "reshape"

    @staticmethod
    def shapes(node):
        return shape_of(node.inputs[0]), shape_of(node.outputs[0])

    def backward(self, node, out_wishes):
        ins_, outs_ = self.shapes(node)
        wishes: List[Wish] = [None] * len(node.inputs)
        if out_wishes[0] and ins_ is not None and outs_ is not None:
            wishes[0] = _dedupe(rewrite.reshape_in_perm(p, ins_, outs_) for p in out_wishes[0])
        return wishes

    def forward(self, node, in_perms, out_wishes):
        ins_, outs_ = self.shapes(node)
        p_in = in_perms[0]
        if p_in is None or ins_ is None or outs_ is None:
            return LayoutRule.forward(self, node, in_perms, out_wishes)
        rest = [None] * (len(node.inputs) - 1)
        free = rewrite.reshape_out_perm(p_in, ins_, outs_)
        if free is not None:
            return Decision([p_in] + rest, [free])
        if len(outs_) == 2 and fc_only(node.outputs[0]) and ins_[0] == outs_[0]:
            col = rewrite.flatten_col_perm(p_in, ins_)
            if col is not None:
                return Decision([p_in] + rest, [identity(2)], col_perm=col)
        for want in out_wishes[0] or ():
            need = rewrite.reshape_in_perm(want, ins_, outs_)
            if need is not None:
                return Decision([need] + rest, [want])
        need = rewrite.regroup(p_in, ins_, outs_)
        return Decision([need] + rest, [rewrite.reshape_out_perm(need, ins_, outs_)])


def fc_only(value) -> bool:
    """Every reader is a fully-connected layer with a constant 2-D weight, reading it as A."""
    if value.is_graph_output() or not value.consumers():
        return False
    for use in value.uses():
        node, idx = use.node, use.idx
        if idx != 0 or not is_default_domain(node.domain):
            return False
        b = node.inputs[1] if len(node.inputs) > 1 else None
        if node.op_type == "Gemm":
            if attr(node, "transA", 0) or not is_const(b):
                return False
        elif node.op_type == "MatMul":
            if not is_const(b) or rank_of(b) != 2:
                return False
        else:
            return False
    return True


@register("Gather")
class GatherRule(LayoutRule):
    """Constant indices: the gathered axis is rewritten (scalar indices drop it)."""
    kind = "axis"

    def backward(self, node, out_wishes):
        idx = const_of(node.inputs[1])
        if not out_wishes[0] or idx is None or idx.ndim > 1:
            return [None, None]
        if idx.ndim == 1:
            return [out_wishes[0], None]
        axis = attr(node, "axis", 0) % rank_of(node.inputs[0])
        return [_dedupe(insert_axis(p, axis, 0 if axis == 0 else list(p).index(axis - 1) + 1)
                        for p in out_wishes[0]), None]

    def forward(self, node, in_perms, out_wishes):
        idx = const_of(node.inputs[1])
        if idx is None or idx.ndim > 1 or in_perms[0] is None:
            return LayoutRule.forward(self, node, in_perms, out_wishes)
        axis = attr(node, "axis", 0) % len(in_perms[0])
        out = drop_axes(in_perms[0], [axis]) if idx.ndim == 0 else in_perms[0]
        return Decision([in_perms[0], None], [out])


def _swapped(rank: int) -> Perm:
    return identity(rank)[:-2] + (rank - 1, rank - 2)


@register("MatMul")
class MatMulRule(LayoutRule):
    """BATCH_MATMUL reads a runtime operand stored with its last two dims swapped (adj_x /
    adj_y); a constant right operand makes it a FULLY_CONNECTED on the source layout."""
    kind = "matmul"

    def backward(self, node, out_wishes):
        b_const = is_const(node.inputs[1])
        wishes: List[Wish] = []
        for v in node.inputs:
            r = rank_of(v)
            if v is None or is_const(v) or r is None:
                wishes.append(None)
            elif b_const or r < 2:
                wishes.append((identity(r),))
            else:
                wishes.append((identity(r), _swapped(r)))
        return wishes

    def forward(self, node, in_perms, out_wishes):
        b_const = is_const(node.inputs[1])
        ins: List[Optional[Perm]] = []
        for v, p in zip(node.inputs, in_perms):
            if v is None or is_const(v) or p is None:
                ins.append(None)
                continue
            r = len(p)
            ok = r >= 2 and not b_const and p == _swapped(r)
            ins.append(p if ok else identity(r))
        return Decision(ins, [_ident(node.outputs[0])])
