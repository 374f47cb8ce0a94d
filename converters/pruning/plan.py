"""Which channel classes to remove: from a channel-pattern table, or a keep ratio per layer.

A *layer* here is a producer (Conv / ConvTranspose / Gemm / MatMul weight); its
output channels are classes, and coupled layers (the convs writing one residual
stream) share the same classes. A keep ratio picks, per group of coupled layers,
the lowest-scored removable classes; a table lists channels per weight
(``pattern: channel``, ``pruned`` indices, or only a ``target`` fraction, which
is then met by score), and a class goes only when *every* layer producing it
lists it — otherwise its coupled partners would still write to it. Where a
grouped convolution cuts the channels into groups, every group loses as many
(ranked by score within the group, as Torch-Pruning does), or none does.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union

import numpy as np

from converters.pruning.analyze import ChannelAnalysis, GroupSplit
from edgert.errors import InputError

Keep = Union[float, Mapping[str, float]]


@dataclass
class PrunePlan:
    removed: Set[int] = field(default_factory=set)                 # class roots
    kept_reasons: Dict[str, List[str]] = field(default_factory=dict)  # weight -> why kept
    requested: Dict[str, int] = field(default_factory=dict)        # weight -> channels asked

    def note(self, weight: str, reason: str) -> None:
        self.kept_reasons.setdefault(weight, [])
        if reason not in self.kept_reasons[weight]:
            self.kept_reasons[weight].append(reason)


def _groups(ca: ChannelAnalysis) -> "OrderedDict[Tuple[int, ...], List[str]]":
    """Producers grouped by the class set they write (coupled layers share one)."""
    groups: "OrderedDict[Tuple[int, ...], List[str]]" = OrderedDict()
    for weight in ca.by_weight:
        key = tuple(sorted(set(ca.producer_roots(weight).tolist())))
        groups.setdefault(key, []).append(weight)
    return groups


def _ratio_for(weights: List[str], keep: Keep) -> Optional[float]:
    if not isinstance(keep, Mapping):
        return float(keep)
    found = []
    for w in weights:
        for pattern, value in keep.items():
            if pattern == w or re.fullmatch(pattern, w) or re.search(pattern, w):
                found.append(float(value))
                break
    return max(found) if found else None        # coupled layers: the most conservative


def plan_keep_ratio(ca: ChannelAnalysis, keep: Keep) -> PrunePlan:
    """Remove the lowest-scored (1 - keep) of each coupled group's removable classes."""
    values = list(keep.values()) if isinstance(keep, Mapping) else [keep]
    if any(not 0.0 < float(v) <= 1.0 for v in values):
        raise InputError(f"keep ratios must be in (0, 1], got {values}")
    plan = PrunePlan()
    for roots, weights in _groups(ca).items():
        ratio = _ratio_for(weights, keep)
        if ratio is None:
            continue
        n_remove = int(round((1.0 - ratio) * len(roots)))
        if n_remove <= 0:
            continue
        free = [r for r in roots if ca.removable(r)]
        if len(free) < len(roots):
            reason = next(ca.classes[r].reason for r in roots if not ca.removable(r))
            for w in weights:
                plan.note(w, f"{len(roots) - len(free)} of {len(roots)} channels cannot go: "
                             f"{reason}")
        for w in weights:
            plan.requested[w] = int(round((1.0 - ratio) * len(roots)))
        n_remove = min(n_remove, len(free), len(roots) - 1)
        splits = _splits_in(ca, roots)
        if splits:
            chosen, why = _even_choice(ca, roots, n_remove, splits)
            plan.removed.update(chosen)
            for w in weights if why else ():
                plan.note(w, why)
            continue
        ranked = sorted(free, key=lambda r: (ca.classes[r].score, r))
        plan.removed.update(ranked[:n_remove])
    _enforce_even(ca, plan)
    return plan


def _uneven(vec: np.ndarray) -> bool:
    return bool(np.any(vec != vec[0]))


def _splits_in(ca: ChannelAnalysis, roots: Tuple[int, ...]) -> List[GroupSplit]:
    """The grouped-conv splits some of ``roots`` fall into unevenly (a class with one
    position in every block, as a shuffled channel has, leaves the blocks even)."""
    return [s for s in ca.splits if any(r in s.counts and _uneven(s.counts[r]) for r in roots)]


def _even_choice(ca: ChannelAnalysis, roots: Tuple[int, ...], n_remove: int,
                 splits: List[GroupSplit]) -> Tuple[Set[int], str]:
    """At most ``n_remove`` classes, the same share of every *cell* (the classes that sit in
    the same blocks of every split: one group of a grouped conv, or the part of it a
    channel shuffle sends to one group of the next), each cell's lowest-scored first.
    Removing ``j / G`` of every cell (G: the gcd of the cell sizes) takes equally from
    every block, since the blocks are equally wide. Returns (chosen, why fewer)."""
    where = f"{splits[0].why}" + (f" and {len(splits) - 1} more" if len(splits) > 1 else "")
    inside = set(roots)
    for s in splits:
        outside = [r for r, v in s.counts.items() if r not in inside and _uneven(v)]
        if outside or _uneven(np.sum([s.counts[r] for r in roots if r in s.counts], axis=0)):
            return set(), (f"{s.why}: its groups also hold channels of other layers "
                           "(a Concat) or fixed channels, so they cannot be pruned evenly; "
                           "kept whole")
    cells: Dict[Tuple, List[int]] = {}
    for r in roots:
        key = tuple(tuple(s.counts.get(r, np.zeros(s.groups, np.int64)).tolist())
                    for s in splits)
        cells.setdefault(key, []).append(r)
    sizes = [len(c) for c in cells.values()]
    free = [[r for r in c if ca.removable(r)] for c in cells.values()]
    step = int(np.gcd.reduce(sizes))
    j = min([n_remove * step // len(roots), step - 1] +
            [len(f) * step // n for f, n in zip(free, sizes)])
    if j <= 0:
        return set(), (f"{where}: keeping its groups equally wide removes these "
                       f"{len(roots)} channels only in steps of {len(roots) // step} (they "
                       f"fall into {len(cells)} parts of {sorted(set(sizes))}), more than "
                       f"the {n_remove} asked; kept whole")
    chosen: Set[int] = set()
    for f, n in zip(free, sizes):
        chosen.update(sorted(f, key=lambda r: (ca.classes[r].score, r))[:j * n // step])
    why = "" if len(chosen) == n_remove else \
        f"{where}: {len(chosen)} of the {n_remove} channels asked removed, to keep its " \
        "groups equally wide"
    return chosen, why


def _enforce_even(ca: ChannelAnalysis, plan: PrunePlan) -> None:
    """Put back every class of a split whose blocks would lose unequal numbers (a table
    that lists channels unevenly, or coupled layers planned apart), until all are even."""
    changed = True
    while changed:
        changed = False
        for s in ca.splits:
            gone = [r for r in s.counts if r in plan.removed]
            if not gone or not _uneven(np.sum([s.counts[r] for r in gone], axis=0)):
                continue
            for r in gone:
                plan.removed.discard(r)
                for w, _ in ca.classes[r].members:
                    plan.note(w, f"kept some: {s.why} would lose unequal numbers of "
                                 "channels per group")
            changed = True


def plan_from_table(ca: ChannelAnalysis, table: Any) -> PrunePlan:
    """The classes a sparsity table's ``channel`` entries ask to remove."""
    plan = PrunePlan()
    listed: Dict[str, Set[int]] = {}
    for name, e in table.weights.items():
        if e.pattern != "channel" or name not in ca.by_weight:
            continue
        p = ca.by_weight[name]
        roots = ca.producer_roots(name)
        if e.axis is not None and e.axis % len(p.weight.shape) != p.out_axis:
            plan.note(name, f"table axis {e.axis} is not the output-channel axis {p.out_axis}")
            continue
        if e.pruned is not None:
            chosen = set(int(c) for c in e.pruned if 0 <= int(c) < len(roots))
        else:                                        # only a target: meet it by score
            chosen = _target_rows(ca, roots, int(round(float(e.sparsity) * len(roots))))
        listed[name] = chosen
        plan.requested[name] = len(chosen)
    wanted = {int(ca.producer_roots(n)[c]) for n, chans in listed.items() for c in chans}
    for root in sorted(wanted):
        info = ca.classes[root]
        owners = [(w, row) for w, row in info.members]
        refusing = [w for w, row in owners if row not in listed.get(w, set())]
        if info.reason is not None:
            for w, _ in owners:
                if w in listed:
                    plan.note(w, f"kept some: {info.reason}")
        elif refusing:
            for w, _ in owners:
                if w in listed:
                    plan.note(w, f"kept some: coupled with {refusing[0]} (an Add or Mul), "
                                 "which keeps them")
        else:
            plan.removed.add(root)
    _enforce_even(ca, plan)
    return plan


def _target_rows(ca: ChannelAnalysis, roots: np.ndarray, k: int) -> Set[int]:
    """The ``k`` lowest-scored rows, evenly per group where a grouped conv needs it."""
    key = tuple(sorted(set(roots.tolist())))
    splits = _splits_in(ca, key)
    if splits:
        picked, _ = _even_choice(ca, key, min(k, len(key) - 1), splits)
        return {c for c, r in enumerate(roots.tolist()) if r in picked}
    order = sorted(range(len(roots)), key=lambda c: (ca.classes[roots[c]].score, c))
    return set(order[:k])


def channel_table(ca: ChannelAnalysis, plan: PrunePlan, source: str = "") -> Any:
    """The plan as a sparsity table: one ``channel`` entry per layer that loses channels."""
    from quant_tables import SparsityTable, WeightSparsity
    from quant_tables.provenance import Provenance
    from quant_tables.sparsity_table import pattern_sparsity

    table = SparsityTable(provenance=Provenance(producer="channel_prune", source=source,
                                                method="channel classes by score"))
    for weight, p in ca.by_weight.items():
        roots = ca.producer_roots(weight)
        pruned = [c for c, r in enumerate(roots.tolist()) if r in plan.removed]
        if not pruned:
            continue
        e = WeightSparsity("channel", mask_source="channel_prune", axis=p.out_axis,
                           pruned=pruned, target=len(pruned) / len(roots), source=p.node)
        arr = p.weight.const_value.numpy()
        if not np.any(np.take(arr, pruned, axis=p.out_axis) != 0):
            e.measured = pattern_sparsity(arr, e)       # the source is already masked
        table.weights[weight] = e
    return table
