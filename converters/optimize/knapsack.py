"""The search's solver: a multiple-choice knapsack over the chain of units.

Each unit takes exactly one option; each option costs latency (its measured change,
``latency.py``) and damage (its measured effect on the outputs, ``evaluate.damage``);
the total damage is minimised for every latency the options can add up to. Units
form a chain, and the only term that is not per unit is the saving at a cut between
two int8 units, so a dynamic programme over the units whose state is the latency so
far (in bins of ``resolution`` ms) and whether the last unit wrote int8 solves it
exactly: one pass gives the best candidate at *every* budget, i.e. the whole
predicted Pareto front (HAWQ-V3 solves the same problem with an integer linear
programme; on a chain the DP is exact and needs no solver).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from converters.optimize.latency import LatencyTable, edges, saving
from converters.optimize.space import Candidate, Option, UnitSpace
from converters.optimize.units import Unit


@dataclass
class FrontPoint:
    """A candidate on the predicted front."""

    candidate: Candidate
    predicted_ms: float
    damage: float


def solve(units: List[Unit], space: UnitSpace, table: LatencyTable,
          damages: Sequence[Dict[Option, float]], allowed: Optional[Sequence[List[Option]]] = None,
          resolution: Optional[float] = None) -> List[FrontPoint]:
    """The predicted Pareto front (fastest first): for each reachable latency the
    least-damage candidate, keeping only points that lower the damage of every faster
    one. ``allowed`` restricts each unit's options (default: those with a latency and a
    damage)."""
    n = len(units)
    choices = _choices(units, space, table, damages, allowed)
    res = resolution or max(table.base_ms / 4000.0, 1e-7)
    lo = sum(min(c[1] for c in ch) for ch in choices) - sum(
        sum(table.conversion_ms(k)) for k in range(n - 1))
    hi = sum(max(c[1] for c in ch) for ch in choices)
    size = int(np.ceil((hi - lo) / res)) + 3
    offset = int(np.ceil(-lo / res)) + 1
    inf = np.inf
    cost = np.full((2, size), inf)
    cost[0, offset] = 0.0
    back: List[np.ndarray] = []
    for u in range(n):
        new = np.full((2, size), inf)
        arg = np.full((2, size, 3), -1, dtype=np.int64)    # previous flag, option, bins moved
        q, dq = table.conversion_ms(u - 1) if u > 0 else (0.0, 0.0)
        for prev in (0, 1):
            if not np.isfinite(cost[prev]).any():
                continue
            for j, (_opt, delta, dmg, needs, out) in enumerate(choices[u]):
                step = delta - (saving(bool(prev), needs, q, dq) if u > 0 else 0.0)
                k = int(round(step / res))
                shifted = _shift(cost[prev], k) + dmg
                better = shifted < new[int(out)]
                new[int(out)][better] = shifted[better]
                arg[int(out)][better] = (prev, j, k)
        cost = new
        back.append(arg)
    return _front(cost, back, choices, table.base_ms, offset, res)


def _choices(units, space, table, damages, allowed):
    out = []
    for u in units:
        opts = allowed[u.index] if allowed is not None else space.options[u.index]
        row = []
        for o in opts:
            if not table.has(u.index, o) or (not o.is_base and o not in damages[u.index]):
                continue
            delta = 0.0 if o.is_base else table.deltas[u.index][o]
            dmg = 0.0 if o.is_base else max(0.0, damages[u.index][o])
            needs, out_int8 = edges(u, o, space.mixed_float[u.index])
            row.append((o, delta, dmg, needs, out_int8))
        if not row:
            row.append((Option(), 0.0, 0.0, *edges(u, Option(), [])))
        out.append(row)
    return out


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(a, np.inf)
    if k >= 0:
        out[k:] = a[:len(a) - k] if k else a
    else:
        out[:k] = a[-k:]
    return out


def _front(cost, back, choices, base_ms: float, offset: int, res: float) -> List[FrontPoint]:
    best = np.minimum(cost[0], cost[1])
    points: List[FrontPoint] = []
    floor = np.inf
    for b in np.flatnonzero(np.isfinite(best)):
        if best[b] < floor - 1e-15:
            floor = best[b]
            flag = 0 if cost[0, b] <= cost[1, b] else 1
            cand = _trace(back, choices, flag, int(b))
            points.append(FrontPoint(cand, base_ms + (b - offset) * res, float(best[b])))
    return points


def _trace(back, choices, flag: int, b: int) -> Candidate:
    """The options that led to state (``flag``, bin ``b``), walking the choices back."""
    opts: List[Option] = []
    for u in range(len(back) - 1, -1, -1):
        prev, j, k = (int(v) for v in back[u][flag, b])
        opts.append(choices[u][j][0])
        b, flag = b - k, prev
    return Candidate(tuple(reversed(opts)))


def best_under(front: List[FrontPoint], budget_ms: float) -> Optional[FrontPoint]:
    """The least-damage point predicted at or under ``budget_ms``."""
    fitting = [p for p in front if p.predicted_ms <= budget_ms]
    return min(fitting, key=lambda p: (p.damage, p.predicted_ms)) if fitting else None
