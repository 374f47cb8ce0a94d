"""The pass manager: run a declared list of passes, round after round, until a
whole round changes nothing, and record what each pass did.

The report keeps, per pass, the number of rewrites over all rounds, the op
counts of the graph before its first run and after its last, the time spent,
notes, and the refusals of the final round (why a rewrite did not happen on
the graph as written).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import onnx_ir as ir

from converters.passes.base import GraphPass, Refusal, op_counts

MAX_ROUNDS = 6


@dataclass
class PassEffect:
    name: str
    description: str
    changes: int = 0
    seconds: float = 0.0
    delta: Dict[str, int] = field(default_factory=dict)   # op type -> count change, all rounds
    notes: List[str] = field(default_factory=list)
    refusals: List[Refusal] = field(default_factory=list)

    def add_delta(self, before: Dict[str, int], after: Dict[str, int]) -> None:
        for k in set(before) | set(after):
            self.delta[k] = self.delta.get(k, 0) + after.get(k, 0) - before.get(k, 0)

    def op_delta(self) -> Dict[str, int]:
        """Op type -> change in count made by this pass (only the ops whose count changed)."""
        return {k: v for k, v in sorted(self.delta.items()) if v}

    @property
    def nodes_delta(self) -> int:
        return sum(self.delta.values())

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "changes": self.changes,
                "seconds": round(self.seconds, 4), "op_delta": self.op_delta(),
                "nodes_delta": self.nodes_delta,
                "notes": list(self.notes), "refusals": [r.to_dict() for r in self.refusals]}


@dataclass
class PassReport:
    """What ``optimize`` did: per pass effects, rounds, op counts before and after."""

    passes: List[PassEffect]
    rounds: int
    converged: bool
    ops_before: Dict[str, int]
    ops_after: Dict[str, int]
    seconds: float

    @property
    def nodes_before(self) -> int:
        return sum(self.ops_before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.ops_after.values())

    @property
    def refusals(self) -> List[Refusal]:
        return [r for p in self.passes for r in p.refusals]

    def effect(self, name: str) -> PassEffect:
        for p in self.passes:
            if p.name == name:
                return p
        raise KeyError(name)

    def summary(self) -> str:
        lines = [f"passes: {self.nodes_before} -> {self.nodes_after} nodes in {self.rounds} "
                 f"round(s), {self.seconds * 1000:.0f} ms"
                 + ("" if self.converged else " (stopped at the round limit)")]
        for p in self.passes:
            delta = ", ".join(f"{k} {v:+d}" for k, v in p.op_delta().items())
            lines.append(f"  {p.name:18s} {p.changes:4d} change(s) {p.nodes_delta:+5d} nodes  "
                         f"{delta}")
            for r in p.refusals[:5]:
                lines.append(f"      refused {r.rule} at {r.node} ({r.op_type}): {r.reason}")
            if len(p.refusals) > 5:
                lines.append(f"      ... {len(p.refusals) - 5} more refusal(s)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"rounds": self.rounds, "converged": self.converged,
                "seconds": round(self.seconds, 4), "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "ops_before": dict(self.ops_before),
                "ops_after": dict(self.ops_after), "passes": [p.to_dict() for p in self.passes]}


def run_passes(model: ir.Model, passes: Sequence[GraphPass],
               max_rounds: int = MAX_ROUNDS) -> PassReport:
    """Run ``passes`` in order, repeatedly, until every pass has run on the graph as it
    now is and changed nothing.

    A pass is not run again while nothing changed since its own last run changed
    nothing: that run already saw this graph (so the loop stops at the pass after the
    last one that changed something, not after a whole idle round). Rule passes trace
    their refusals once, on the final graph (``RulePass.defer_refusals``), not after
    every idle run."""
    t0 = time.perf_counter()
    ops_start = op_counts(model)
    effects = [PassEffect(p.name, p.description) for p in passes]
    deferred = [p for p in passes if hasattr(p, "defer_refusals")]
    for p in deferred:
        p.defer_refusals = True
    try:
        rounds, converged, idle = _rounds(model, passes, effects, max_rounds)
    finally:
        for p in deferred:
            p.defer_refusals = False
    for p, eff, done in zip(passes, effects, idle):
        if done and p in deferred:   # traced refusals first, then the pass's own
            t = time.perf_counter()
            eff.refusals = list(p.trace_refusals(model)) + eff.refusals
            eff.seconds += time.perf_counter() - t
    ir.passes.common.NameFixPass()(model)
    return PassReport(passes=effects, rounds=rounds, converged=converged,
                      ops_before=ops_start, ops_after=op_counts(model),
                      seconds=time.perf_counter() - t0)


def _rounds(model: ir.Model, passes: Sequence[GraphPass], effects: List[PassEffect],
            max_rounds: int):
    """The fixed-point loop of ``run_passes``: (rounds, converged, idle per pass)."""
    idle = [False] * len(passes)
    rounds, converged = 0, False
    counts = op_counts(model)     # as the graph is now: a pass that changes nothing keeps them
    while rounds < max_rounds and not converged:
        rounds += 1
        for k, (p, eff) in enumerate(zip(passes, effects)):
            if idle[k]:
                if all(idle):
                    converged = True
                    break
                continue
            t = time.perf_counter()
            res = p.run(model)
            eff.seconds += time.perf_counter() - t
            eff.changes += res.changes
            eff.notes.extend(res.notes)
            eff.refusals = list(res.refusals)
            if res.changes:
                before, counts = counts, op_counts(model)
                eff.add_delta(before, counts)
                idle = [False] * len(passes)
            idle[k] = not res.changes
        converged = converged or all(idle)
    return rounds, converged, idle
