"""Run the channel rules over a graph and describe every channel class.

``analyze_channels(model)`` walks the graph in order: graph inputs get frozen
ids, each node goes through its rule (``rules.py``; no rule: its channels are
frozen), graph outputs freeze what they carry. The result lists, per class,
the producer rows that make it, an importance score (mean |row| of each
producing weight, times the BatchNorm scale |gamma| / sqrt(var + eps) that
follows it), and why it cannot be removed, if it cannot; and per grouped-conv
split, how many positions of each block every class holds (what the plan needs
to prune evenly within groups).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

import numpy as np

from converters.pruning import rules
from converters.pruning.graph import ChannelGraph, ClassInfo, Producer


@dataclass
class GroupSplit:
    """A tensor cut into ``groups`` equal blocks that must stay equally wide."""

    why: str                                       # "grouped Conv 'x' (group 4) input"
    groups: int
    counts: Dict[int, np.ndarray] = field(default_factory=dict)   # root -> positions per block


@dataclass
class ChannelAnalysis:
    graph: ChannelGraph
    classes: Dict[int, ClassInfo] = field(default_factory=dict)
    by_weight: Dict[str, Producer] = field(default_factory=dict)
    splits: List[GroupSplit] = field(default_factory=list)

    def removable(self, root: int) -> bool:
        return self.classes[root].reason is None

    def producer_roots(self, weight: str) -> np.ndarray:
        return self.graph.producer_roots(self.by_weight[weight])


def analyze_channels(model: Any) -> ChannelAnalysis:
    """Channel classes of an ``onnx_ir.Model`` (nodes in topological order)."""
    from converters.layout.graph import shape_of

    cg = ChannelGraph()
    g = model.graph
    for v in g.inputs:
        s = shape_of(v)
        if v.const_value is None and s is not None and len(s) >= 2 and s[1] is not None:
            ids = cg.new_ids(s[1])
            cg.set(v, ids, np.zeros(s[1], bool))
            cg.freeze(v, f"channels of graph input {v.name!r}")
    for node in g:
        fn = rules.RULES.of_node(node)
        if fn is None:
            if any(cg.tracked(v) for v in node.inputs):
                rules.freeze_all(node, cg)
            continue
        fn(node, cg)
    for v in g.outputs:
        cg.freeze(v, f"channels of graph output {v.name!r}")
    return _describe(cg)


def _describe(cg: ChannelGraph) -> ChannelAnalysis:
    out = ChannelAnalysis(cg)
    reasons = cg.class_reasons()
    for p in cg.producers:
        out.by_weight.setdefault(p.weight.name, p)
        w = np.abs(np.asarray(p.weight.const_value.numpy(), dtype=np.float64))
        rows = np.moveaxis(w, p.out_axis, 0).reshape(w.shape[p.out_axis], -1).mean(axis=1)
        for row, (i, root) in enumerate(zip(cg.ids[p.output].tolist(),
                                            cg.roots(cg.ids[p.output]).tolist())):
            info = out.classes.setdefault(root, ClassInfo(root, reason=reasons.get(root)))
            info.members.append((p.weight.name, row))
            info.score += float(rows[row]) * cg.bn_scale.get(i, 1.0)
    for root, reason in reasons.items():
        out.classes.setdefault(root, ClassInfo(root, reason=reason))
    for value, groups, why in cg.splits:
        roots = cg.roots(cg.ids[value])
        split = GroupSplit(why, groups)
        block = len(roots) // groups
        for pos, root in enumerate(roots.tolist()):
            split.counts.setdefault(root, np.zeros(groups, np.int64))[pos // block] += 1
        out.splits.append(split)
    return out
