"""Decompose what a target lacks: a table of ONNX ops written as other ONNX ops.

A backend asks its own support check about every node; a node the target cannot
take whose op has an entry here is replaced by the entry's plain ONNX ops (then
checked again, so a decomposition may use another: Mish -> Softplus -> ...). What
the target *can* run is left alone, so MNN keeps its Softplus kernel while TFLite,
which has no SOFTPLUS builtin, gets the overflow-safe form. Ops with no entry, or
whose decomposition the target cannot run either, stay refused by the target's
check with its reason.

Adding one: a function ``fn(emitter, node) -> [output values]`` registered with
``@decomposition("Op", formula="...", refuse=why_not, opsets=(lo, hi))`` in this
module (activations, reductions) or the family module listed in
``DECOMPOSITION_MODULES`` (imported on the table's first lookup), and a test row for
each target that lacks it. ``graph_edit.Emitter`` builds the nodes (shapes from ONNX's
shape inference; nodes on constants are evaluated at once); ``refuse(node)`` gives the
reason a node cannot be decomposed, which the target's error quotes. The formulas
are the ONNX definitions (ONNX's reference implementation where the spec leaves a
choice), rearranged only where a direct one overflows (``exp`` of a large input).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import onnx_ir as ir

from converters.passes.graph_edit import Emitter
from edgert.op_registry import OpRegistry, default_opset

ReasonFn = Callable[[ir.Node], Optional[str]]     # None: the target takes the node


@dataclass(frozen=True)
class Decomposition:
    op_type: str
    formula: str
    fn: Callable[[Emitter, ir.Node], List[ir.Value]]
    check: Optional[Callable[[ir.Node], bool]] = None     # can it decompose this node?
    refuse: Optional[ReasonFn] = None     # why it cannot decompose this node (None: it can)

    def reason(self, node: ir.Node) -> Optional[str]:
        """Why this entry cannot decompose ``node`` (``None``: it can)."""
        if self.check is not None and not self.check(node):
            return "the decomposition does not apply to this form"
        return self.refuse(node) if self.refuse is not None else None


# The modules that fill the table besides this one, one per op family.
DECOMPOSITION_MODULES = (
    "converters.passes.decompose_math",
    "converters.passes.decompose_norm",
    "converters.passes.decompose_attention",
    "converters.passes.decompose_resize",
    "converters.passes.decompose_grid",
    "converters.passes.decompose_pool",
    "converters.passes.decompose_index",
)

_TABLE: OpRegistry[Decomposition] = OpRegistry("decomposition", modules=DECOMPOSITION_MODULES)


def decomposition(op_type: str, formula: str,
                  check: Optional[Callable[[ir.Node], bool]] = None,
                  refuse: Optional[ReasonFn] = None, opsets=(1, None)):
    """Register ``fn(emitter, node)`` as the decomposition of ``op_type`` (default domain)
    over ``opsets``; ``check(node)`` says whether it applies to a node, ``refuse(node)``
    why it does not (a reason the target's error can quote)."""
    def deco(fn):
        _TABLE.add(op_type, Decomposition(op_type, formula, fn, check, refuse), opsets=opsets,
                   source=f"{fn.__module__}.{fn.__qualname__}")
        return fn
    return deco


def decompositions() -> Dict[str, Decomposition]:
    """Op type -> its decomposition, sorted by op type (all in the default domain; an op
    with entries for several opset ranges is listed by its latest)."""
    return {r.key.label: r.value
            for r in sorted(_TABLE.registrations(), key=lambda r: (r.key.label, r.opsets.low))}


def _opset_of(node: ir.Node) -> Optional[int]:
    graph = node.graph
    return default_opset(graph.opset_imports, 13) if graph is not None else None


def _lookup(node: ir.Node) -> Optional[Decomposition]:
    opset = _opset_of(node)
    if opset is None:
        regs = _TABLE.registrations(node.op_type, node.domain)
        return regs[-1].value if regs else None
    return _TABLE.of_node(node, opset)


def _entry(node: ir.Node) -> Optional[Decomposition]:
    entry = _lookup(node)
    if entry is None or entry.reason(node) is not None:
        return None
    return entry


def refusal(node: ir.Node) -> Optional[str]:
    """When ``node``'s op has a decomposition that cannot take this node: why (for the
    target's error message); ``None`` when there is no entry or it applies."""
    entry = _lookup(node)
    if entry is None:
        return None
    why = entry.reason(node)
    return None if why is None else f"{entry.formula}: {why}"


def formula_of(node: ir.Node) -> Optional[str]:
    entry = _lookup(node)
    return None if entry is None else entry.formula


@dataclass
class DecomposeReport:
    counts: Counter = field(default_factory=Counter)   # (op type, formula) -> nodes

    @property
    def changes(self) -> int:
        return sum(self.counts.values())

    def notes(self, target: str) -> List[str]:
        if not self.counts:
            return []
        return [f"decomposed for {target} (no kernel): " + "; ".join(
            f"{op} x{n} as {formula}" for (op, formula), n in sorted(self.counts.items()))]


def needs_decomposition(model: ir.Model, reason: ReasonFn) -> bool:
    """Whether some node the target refuses has a decomposition."""
    return any(_entry(n) is not None and reason(n) for n in model.graph)


def decompose_unsupported(model: ir.Model, reason: ReasonFn, max_rounds: int = 4
                          ) -> DecomposeReport:
    """Replace, in place, every node ``reason`` refuses that has a decomposition (repeated,
    since a decomposition may use an op the target lacks and the table covers)."""
    report = DecomposeReport()
    opset = default_opset(model.opset_imports, 13)
    for _ in range(max_rounds):
        todo = [n for n in model.graph if _entry(n) is not None and reason(n)]
        if not todo:
            break
        for node in todo:
            entry = _entry(node)
            e = Emitter(model.graph, node, opset)
            e.replace(entry.fn(e, node))
            report.counts[(node.op_type, entry.formula)] += 1
    return report


def prepared(model: ir.Model, reason: ReasonFn, copy: bool = True):
    """(model with what the target lacks decomposed, report); a copy when ``copy`` and
    something changes, so the caller's model is never altered."""
    if not needs_decomposition(model, reason):
        return model, DecomposeReport()
    work = model.clone() if copy else model
    return work, decompose_unsupported(work, reason)


# -- the table ------------------------------------------------------------------------

def _alpha(node: ir.Node, default: float) -> float:
    return node.attributes.get_float("alpha", default)


def _softplus(e: Emitter, x: ir.Value) -> ir.Value:
    """max(x, 0) + log(1 + exp(-|x|)): exact, and no exp of a large positive number."""
    neg_abs = e.op("Neg", [e.op("Abs", [x])])
    log1p = e.op("Log", [e.op("Add", [e.op("Exp", [neg_abs]), e.like(1.0, x)])])
    return e.op("Add", [e.op("Max", [x, e.like(0.0, x)]), log1p])


def _exp_m1_neg(e: Emitter, x: ir.Value, scale: float = 1.0) -> ir.Value:
    """exp(min(x, 0) / scale) - 1 (the negative branch of ELU-like ops; never overflows)."""
    neg = e.op("Min", [x, e.like(0.0, x)])
    if scale != 1.0:
        neg = e.op("Div", [neg, e.like(scale, x)])
    return e.op("Sub", [e.op("Exp", [neg]), e.like(1.0, x)])


@decomposition("Softplus", "max(x,0) + log(1 + exp(-|x|))")
def _softplus_op(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return [_softplus(e, node.inputs[0])]


@decomposition("Mish", "x * tanh(softplus(x))")
def _mish(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    return [e.op("Mul", [x, e.op("Tanh", [e.op("Softplus", [x])])])]


@decomposition("Elu", "max(x,0) + alpha * (exp(min(x,0)) - 1)")
def _elu(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    neg = e.op("Mul", [_exp_m1_neg(e, x), e.like(_alpha(node, 1.0), x)])
    return [e.op("Add", [e.op("Relu", [x]), neg])]


@decomposition("Selu", "gamma * (max(x,0) + alpha * (exp(min(x,0)) - 1))")
def _selu(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    alpha = _alpha(node, 1.67326319217681884765625)
    gamma = node.attributes.get_float("gamma", 1.05070102214813232421875)
    neg = e.op("Mul", [_exp_m1_neg(e, x), e.like(alpha, x)])
    return [e.op("Mul", [e.op("Add", [e.op("Relu", [x]), neg]), e.like(gamma, x)])]


@decomposition("Celu", "max(x,0) + alpha * (exp(min(x,0) / alpha) - 1)")
def _celu(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    alpha = _alpha(node, 1.0)
    neg = e.op("Mul", [_exp_m1_neg(e, x, alpha), e.like(alpha, x)])
    return [e.op("Add", [e.op("Relu", [x]), neg])]


@decomposition("ThresholdedRelu", "x where x > alpha, else 0")
def _thresholded_relu(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    above = e.op("Greater", [x, e.like(_alpha(node, 1.0), x)], dtype=ir.DataType.BOOL)
    return [e.op("Where", [above, x, e.like(0.0, x)], like=x)]


@decomposition("Softsign", "x / (1 + |x|)")
def _softsign(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    return [e.op("Div", [x, e.op("Add", [e.op("Abs", [x]), e.like(1.0, x)])])]


@decomposition("Less", "Greater(b, a)")
def _less(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a, b = node.inputs[0], node.inputs[1]
    return [e.op("Greater", [b, a], like=node.outputs[0])]


@decomposition("Mod", "a - b * trunc(a / b) (fmod=1)",
               check=lambda node: node.attributes.get_int("fmod", 0) == 1)
def _fmod(e: Emitter, node: ir.Node) -> List[ir.Value]:
    a, b = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    q = e.op("Div", [a, b], like=out)
    trunc = e.op("Mul", [e.op("Sign", [q]), e.op("Floor", [e.op("Abs", [q])])])
    return [e.op("Sub", [a, e.op("Mul", [b, trunc], like=out)], like=out)]


# -- reductions: the L1/L2/log forms as ReduceSum/ReduceMax of elementwise ops ----------

def _axes(node: ir.Node) -> Optional[List[int]]:
    """The reduce node's axes (None: all), from its input (opset 18+) or attribute."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        c = node.inputs[1].const_value
        return None if c is None else [int(a) for a in c.numpy().reshape(-1)]
    a = node.attributes.get_ints("axes", None)
    return list(a) if a else None


def _reduce(e: Emitter, op: str, x: ir.Value, node: ir.Node, keepdims: int) -> ir.Value:
    """``op`` over ``node``'s axes (in the form ``e.opset`` wants) with ``keepdims``."""
    axes = _axes(node)
    rank = len(x.shape) if x.shape is not None else None
    shape = None
    if rank is not None:
        gone = {a % rank for a in axes} if axes else set(range(rank))
        shape = [1 if k in gone else d for k, d in enumerate(x.shape) if keepdims or k not in gone]
    attrs = {"keepdims": keepdims}
    inputs = [x]
    if axes is not None:
        if e.opset >= 18 or (op == "ReduceSum" and e.opset >= 13):
            inputs.append(e.const(np.array(axes, np.int64), np.int64, "axes"))
        else:
            attrs["axes"] = axes
    return e.op(op, inputs, attrs, shape=shape, like=x)


def _check_reduce(node: ir.Node) -> bool:
    return not (len(node.inputs) > 1 and node.inputs[1] is not None
                and node.inputs[1].const_value is None)


def _keep(node: ir.Node) -> int:
    return node.attributes.get_int("keepdims", 1)


@decomposition("ReduceSumSquare", "ReduceSum(x * x)", check=_check_reduce)
def _sum_square(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    return [_reduce(e, "ReduceSum", e.op("Mul", [x, x]), node, _keep(node))]


@decomposition("ReduceL2", "sqrt(ReduceSum(x * x))", check=_check_reduce)
def _l2(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    return [e.op("Sqrt", [_reduce(e, "ReduceSum", e.op("Mul", [x, x]), node, _keep(node))])]


@decomposition("ReduceL1", "ReduceSum(|x|)", check=_check_reduce)
def _l1(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return [_reduce(e, "ReduceSum", e.op("Abs", [node.inputs[0]]), node, _keep(node))]


@decomposition("ReduceLogSum", "log(ReduceSum(x))", check=_check_reduce)
def _log_sum(e: Emitter, node: ir.Node) -> List[ir.Value]:
    return [e.op("Log", [_reduce(e, "ReduceSum", node.inputs[0], node, _keep(node))])]


@decomposition("ReduceLogSumExp", "m + log(ReduceSum(exp(x - m))), m = ReduceMax(x)",
               check=_check_reduce)
def _log_sum_exp(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x = node.inputs[0]
    m = _reduce(e, "ReduceMax", x, node, 1)
    total = _reduce(e, "ReduceSum", e.op("Exp", [e.op("Sub", [x, m])]), node, _keep(node))
    m_out = m if _keep(node) else _reduce(e, "ReduceMax", x, node, 0)
    return [e.op("Add", [e.op("Log", [total]), m_out])]
