"""Decide the stored layout of every value in a graph (the layout plan).

Two passes over the graph, both driven by the per-op rules in ``check.py``:

1. *Backward* (consumers first): each value collects the layouts its consumers
   would like (a Conv wants channel-last, a MatMul wants the source layout, a
   Reshape wants whatever makes it free...); the majority is its preference.
2. *Forward* (producers first): each node, seeing the layouts its inputs really
   have and the preferences of its outputs, fixes the layouts it requires of its
   inputs and the layouts of its outputs.

Wherever a required layout differs from the stored one the lowering inserts one
TRANSPOSE (shared by every reader that wants the same layout). Graph inputs and
outputs keep the source layout unless ``io_layout="nhwc"``, which stores rank-4
inputs and outputs channel-last and so drops the boundary transposes.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from converters.layout.check import Wish, combine_wishes, rule_for
from converters.layout.graph import is_const, rank_of
from converters.layout.perm import Perm, channel_last, identity

IO_LAYOUTS = ("source", "nhwc")


@dataclass
class Conversion:
    value_name: str
    src: Perm
    dst: Perm
    numel: Optional[int]


@dataclass
class LayoutPlan:
    """Stored layout of each value, the layouts each node requires, and what that costs."""

    perms: Dict[object, Perm] = field(default_factory=dict)
    required: Dict[Tuple[int, int], Perm] = field(default_factory=dict)   # (id(node), i)
    col_perms: Dict[object, np.ndarray] = field(default_factory=dict)
    materialized: set = field(default_factory=set)                      # id(Transpose node)
    output_perms: Dict[str, Perm] = field(default_factory=dict)
    input_perms: Dict[str, Perm] = field(default_factory=dict)
    conversions: List[Conversion] = field(default_factory=list)

    def perm(self, value) -> Optional[Perm]:
        p = self.perms.get(value)
        if p is None:
            r = rank_of(value)
            return identity(r) if r is not None else None
        return p

    def required_perm(self, node, i: int) -> Optional[Perm]:
        return self.required.get((id(node), i))

    def col_perm(self, value) -> Optional[np.ndarray]:
        return self.col_perms.get(value)

    def is_materialized(self, node) -> bool:
        return id(node) in self.materialized

    def transpose_count(self) -> int:
        """TRANSPOSE ops this plan needs: one per distinct conversion plus moving Transposes."""
        return len(self.conversions) + len(self.materialized)


def _numel(value) -> Optional[int]:
    if value is None or value.shape is None:
        return None
    n = 1
    for d in value.shape:
        if not isinstance(d, int):
            return None
        n *= d
    return n


def _io_perm(value, io_layout: str) -> Optional[Perm]:
    r = rank_of(value)
    if r is None:
        return None
    return channel_last(r) if io_layout == "nhwc" and r == 4 else identity(r)


def _backward(graph, nodes, io_layout: str) -> Dict[object, Wish]:
    votes: Dict[object, list] = defaultdict(list)
    for out in graph.outputs:
        p = _io_perm(out, io_layout)
        votes[out].append((p, identity(len(p))) if io_layout == "nhwc" and p else
                          (p,) if p else None)
    wishes: Dict[object, Wish] = {}
    for node in reversed(nodes):
        out_wishes = [combine_wishes(votes[v]) if v is not None else None for v in node.outputs]
        for v, w in zip(node.outputs, out_wishes):
            wishes[v] = w
        in_wishes = rule_for(node).backward(node, out_wishes)
        for v, w in zip(node.inputs, in_wishes):
            if v is not None and w and not is_const(v):
                votes[v].append(w)
    for v in graph.inputs:
        wishes[v] = combine_wishes(votes[v])
    return wishes


def plan_layout(graph, io_layout: str = "source") -> LayoutPlan:
    """The layout plan for ``graph`` (an ``onnx_ir.Graph`` in topological order)."""
    if io_layout not in IO_LAYOUTS:
        raise ValueError(f"io_layout must be one of {IO_LAYOUTS}, not {io_layout!r}")
    nodes = list(graph)
    wishes = _backward(graph, nodes, io_layout)
    plan = LayoutPlan()
    for v in graph.inputs:
        plan.perms[v] = _io_perm(v, io_layout)
        if plan.perms[v] is not None:
            plan.input_perms[v.name] = plan.perms[v]
    seen = set()

    def need(value, perm: Optional[Perm]) -> None:
        have = plan.perm(value)
        if perm is not None and have is not None and perm != have and (value, perm) not in seen:
            seen.add((value, perm))
            plan.conversions.append(Conversion(value.name, have, perm, _numel(value)))

    for node in nodes:
        in_perms = [None if (v is None or is_const(v)) else plan.perm(v) for v in node.inputs]
        out_wishes = [wishes.get(v) for v in node.outputs]
        d = rule_for(node).forward(node, in_perms, out_wishes)
        for i, (v, p) in enumerate(zip(node.inputs, d.inputs)):
            if v is not None and p is not None and not is_const(v):
                plan.required[(id(node), i)] = p
                need(v, p)
        for v, p in zip(node.outputs, d.outputs):
            if v is not None:
                plan.perms[v] = p if p is not None else plan.perm(v)
        if d.col_perm is not None:
            plan.col_perms[node.outputs[0]] = d.col_perm
        if d.materialize:
            plan.materialized.add(id(node))
    for out in graph.outputs:
        have = plan.perm(out)
        want = _io_perm(out, io_layout)
        if io_layout == "nhwc" and have is not None and have == identity(len(have)):
            want = have
        if want is not None:
            plan.output_perms[out.name] = want
            need(out, want)
    return plan
