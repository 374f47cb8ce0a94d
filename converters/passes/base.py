"""What a graph pass is, what it reports, and the adapter that runs onnxscript
rewrite rules as one of our passes.

A pass changes an ``onnx_ir.Model`` in place and returns a ``PassResult``: how
many rewrites it made, and, when a rule's pattern matched but its ``check``
refused, a ``Refusal`` naming the node and the reason ("weight is a graph
input", "BN output used twice"). Refusals are what answers "why was this BN not
folded?" in the conversion report.

Rewrite rules are onnxscript's (``pattern()``/``check()``/``rewrite()``); ours
use the same base class, so a rule written here and one reused from onnxscript
run, count and refuse the same way. Refusals are collected with a tracer run
(onnxscript's ``MatchingTracer`` hook: it matches and checks without changing
the graph), only in the round where a pass made no change, so the refusals
listed are those of the final graph.
"""
from __future__ import annotations

import collections
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set

import onnx_ir as ir

from edgert.op_registry import op_label


@dataclass(frozen=True)
class Refusal:
    """A rewrite that matched but was refused, and why."""

    rule: str
    node: str
    op_type: str
    reason: str

    def to_dict(self) -> dict:
        return {"rule": self.rule, "node": self.node, "op_type": self.op_type,
                "reason": self.reason}


@dataclass
class PassResult:
    changes: int = 0
    refusals: List[Refusal] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


class GraphPass(ABC):
    """One graph transformation. Subclasses set ``name`` and ``description``."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def run(self, model: ir.Model) -> PassResult:
        """Transform ``model`` in place."""

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


def op_counts(model: ir.Model) -> Dict[str, int]:
    """Op type -> count over the main graph and its subgraphs (custom domains as 'domain::Op')."""
    counts: collections.Counter = collections.Counter()
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        counts[op_label(node.domain, node.op_type)] += 1
    return dict(sorted(counts.items()))


def node_label(node: ir.Node) -> str:
    """A node's name, or its first output's name when it has none."""
    if node.name:
        return node.name
    outs = [o.name for o in node.outputs if o is not None and o.name]
    return outs[0] if outs else f"<unnamed {node.op_type}>"


# onnxscript's matcher reports a full structural match it may not replace this way.
_OTHER_USES = "Matched nodes have other uses preventing replacement."


class _RefusalTracer:
    """Collects every condition failure (onnxscript calls ``log`` for each match it tries)."""

    def __init__(self) -> None:
        self.refusals: List[Refusal] = []

    def log(self, rule, container, node, match_result, status) -> None:
        from onnxscript.rewriter import MatchStatus

        reason = getattr(match_result, "reason", "") or ""
        if status == MatchStatus.NO_MATCH and reason == _OTHER_USES:
            reason = ("an intermediate result has other uses, so the matched nodes "
                      "cannot be replaced")
        elif status not in (MatchStatus.CONDITION_FAILED, MatchStatus.REPLACEMENT_FAILED):
            return
        reason = reason or status.name.lower().replace("_", " ")
        self.refusals.append(Refusal(rule.name or type(rule).__name__, node_label(node),
                                     node.op_type, reason))


def model_op_types(model: ir.Model) -> Set[str]:
    """Every op type in the model, its subgraphs included."""
    return {node.op_type for node in ir.traversal.RecursiveGraphIterator(model.graph)}


def applicable_rules(rules: Sequence, model: ir.Model) -> List:
    """The rules whose pattern's op types all occur in the model: onnxscript tries every
    rule at every node, which for a rule set that cannot match (no Transpose, no Cast...)
    cost 0.2 s per run on a 224-node detector. A pattern node whose op is not a plain
    name (an alternative, any op) keeps its rule."""
    present = model_op_types(model)
    kept = []
    for rule in rules:
        pattern = getattr(rule, "_target_pattern", None)
        needed = set()
        for node in getattr(pattern, "_nodes", None) or ():
            try:
                ident = node.op_identifier()
            except Exception:  # noqa: BLE001 - a pattern this reader does not know: keep it
                ident = None
            if ident and len(ident) > 1 and isinstance(ident[1], str) and ident[1]:
                needed.add(ident[1])
        if needed <= present:
            kept.append(rule)
    return kept


class RootFiltered:
    """A rewrite rule tried only at nodes whose op type is its pattern's root op.

    onnxscript's ``RewriteRuleSet`` tries every rule at every node, and each try that
    fails on the very first comparison still sets up a match and formats a failure
    message: on the 547-node detector of ``bench/bench_convert_time.py`` that was 16,000
    tries per pipeline run, most of the rule passes' time. A node whose op type differs
    from the pattern's root (its single output node, matched first) cannot match, so
    skipping it changes nothing but the time (``tests/converters/test_passes.py``
    applies every pass's rules both ways and compares the graphs). Everything but
    ``try_rewrite`` is the wrapped rule's, so the rule set, the tracer and the counts
    see the rule itself."""

    def __init__(self, rule, op_type: str) -> None:
        self._rule = rule
        self._op_type = op_type

    def __getattr__(self, name: str):
        return getattr(self._rule, name)

    def __repr__(self) -> str:
        return f"RootFiltered({self._rule!r}, {self._op_type!r})"

    def try_rewrite(self, model, graph_or_function, node, *args, **kwargs):
        if node.op_type != self._op_type:
            return None
        return self._rule.try_rewrite(model, graph_or_function, node, *args, **kwargs)


def root_filtered(rules: Sequence) -> List:
    """``rules``, each wrapped in ``RootFiltered`` when its pattern has one root node
    with a plain op type (a rule whose root is an alternative or any op is kept as is)."""
    out = []
    for rule in rules:
        op_type = _root_op_type(getattr(rule, "_target_pattern", None))
        out.append(RootFiltered(rule, op_type) if op_type else rule)
    return out


def _root_op_type(pattern) -> Optional[str]:
    """The op type a pattern's single root node requires, or None (several roots, an
    alternative, any op, or a pattern this reader does not know). A commuted copy of a
    pattern (``rule.commute()``) keeps its op as a constant string pattern rather than
    an op identifier."""
    try:
        if pattern is None or not pattern.has_single_output_node:
            return None
        root = pattern.output_node
        ident = root.op_identifier()
        if ident is not None:
            op = ident[1] if len(ident) > 1 else None
        else:
            value = getattr(root.op, "value", None)     # StringConstantPattern
            op = value() if callable(value) else None
    except Exception:  # noqa: BLE001 - a pattern this reader does not know: no filter
        return None
    return op if isinstance(op, str) and op else None


class RulePass(GraphPass):
    """A pass made of onnxscript rewrite rules, applied until none fires.

    ``refusal_rules`` limits which rules' refusals are reported (those a person
    would ask about); by default every rule's are.
    """

    max_sweeps = 8
    #: set by the pass manager while it runs the pass: it traces the refusals itself, once,
    #: on the final graph, instead of after every run that changed nothing
    defer_refusals = False

    def rules(self) -> Sequence:  # onnxscript RewriteRule objects
        raise NotImplementedError

    def reported_rules(self) -> Sequence:
        return self.rules()

    def run(self, model: ir.Model) -> PassResult:
        from onnxscript.rewriter import RewriteRuleSet

        all_rules = list(self.rules())
        changes = 0
        for _ in range(self.max_sweeps):
            rules = applicable_rules(all_rules, model)
            if not rules:
                break
            n = RewriteRuleSet(root_filtered(rules)).apply_to_model(model)
            changes += n
            if not n:
                break
        result = PassResult(changes=changes)
        if not changes and not self.defer_refusals:
            result.refusals = self.trace_refusals(model)
        return result

    def trace_refusals(self, model: ir.Model) -> List[Refusal]:
        from onnxscript.rewriter import RewriteRuleSet

        rules = applicable_rules(list(self.reported_rules()), model)
        if not rules:
            return []
        tracer = _RefusalTracer()
        RewriteRuleSet(root_filtered(rules)).apply_to_model(model, tracer=tracer)
        seen, unique = set(), []
        for r in tracer.refusals:
            if (r.rule, r.node) not in seen:
                seen.add((r.rule, r.node))
                unique.append(r)
        return unique
