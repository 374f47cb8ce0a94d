"""The search's last phase: a measured local search around the best points so far.

Why it exists: the knapsack adds sensitivities measured one unit at a time, and two
of its assumptions fail once pruned candidates are fine-tuned (``--train``). The
damage (logit noise against the fp32 model) of a fine-tuned pruned unit says little
about its accuracy (0.2-0.6 at no accuracy cost on the digits net: training moves the
logits, not the answers), and accuracy drops of several pruned units do not add
(each unit at keep 0.5 alone loses nothing, all of them at once 56 points). The front
and the repair then end a few tenths of a point or a few per cent of latency short,
with most of the search time left. This phase spends that time where the measured
points are:

1. **Corrected sensitivities** (``fit_drops``): an additive model of the accuracy drop
   (points) of every unit option, fitted by ridge regression to *every* evaluated
   candidate: the probes (one unit changed) and every multi-unit point (uniform
   choices, front, repair, earlier rounds), so each measured combination corrects the
   units it changed.
2. **Neighbours** (``neighbours``) of the seeds: the fastest measured points that keep
   the drop limit, and the most accurate ones within the budget. Every change of one
   or two units (two: a swap, one unit back to a safer option while another is pruned
   more) whose latency, predicted by the table and scaled by the seed's own measured
   against predicted ratio, is within the budget; ranked by the seed's measured drop
   plus the model's change (``rank``).
3. **The knapsack again**, with the fitted drops as costs, for the budget scaled by
   the median prediction error so far.

The best few are built, evaluated and measured; the model is fitted again with them;
the rounds go on until the goal is met, nothing new is predicted within the budget,
or the time runs out (a round starts only if its candidates fit in the time left, at
the slowest wall time per candidate seen so far), or ``local_patience`` rounds in a row
kept no candidate within the drop limit (a net that collapses under every change the
budget needs: the zoo's untrained MobileNetV2 on MNN tried 112 such candidates).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from converters.optimize.knapsack import best_under, solve
from converters.optimize.search import Search, _acc, _ms, choose
from converters.optimize.space import Candidate, Option
from converters.optimize.state import Record

Drops = List[Dict[Option, float]]
#: observed drops are clipped to this range (points) before fitting: a collapsed model
#: (-56 pt) says "far too much" as well at 5 points, and does not drown the other rows
CLIP = (-1.0, 5.0)


@dataclass
class Pick:
    """A candidate the phase proposes, with why."""

    candidate: Candidate
    predicted_ms: float        # the table's prediction scaled by its seed's ratio
    est_drop: float            # points, from the seed's measured drop and the fitted model
    seed: str                  # key of the measured point it was derived from


def _factors(u: int, o: Option) -> List[Tuple[str, int, object]]:
    """The parts of an option the fitted model prices apart: its precision, its keep
    ratio and its block sparsity (a unit at int8 keep 0.5 shares its pruning's weight
    with fp32 keep 0.5: precision and pruning act on different errors, and sharing
    halves the unknowns the measured points have to pin)."""
    out: List[Tuple[str, int, object]] = []
    if o.precision != "fp32":
        out.append(("precision", u, o.precision))
    if o.keep < 1.0:
        out.append(("keep", u, o.keep))
    if o.sparsity > 0.0:
        out.append(("sparsity", u, o.sparsity))
    return out


def fit_drops(samples: Sequence[Tuple[Candidate, float]], allowed: Sequence[List[Option]],
              ridge: float = 1.0) -> Drops:
    """Per unit and allowed option, the accuracy drop (points) of an additive model
    fitted to ``samples`` ((candidate, its measured drop in points)) by ridge regression
    towards 0: min ||X w - y||^2 + ridge ||w||^2, X the candidates' option parts
    (``_factors``). A probe pins its unit's parts; every multi-unit sample corrects the
    parts it holds, so a combination that loses more than its probes say makes those
    parts dearer."""
    cols: Dict[Tuple[str, int, object], int] = {}
    pairs = [(u, o) for u, row in enumerate(allowed) for o in row]
    pairs += [(u, o) for c, _ in samples for u, o in enumerate(c.options)]
    for u, o in pairs:
        for f in _factors(u, o):
            cols.setdefault(f, len(cols))
    rows, ys = [], []
    for cand, drop in samples:
        x = np.zeros(len(cols))
        for u, o in enumerate(cand.options):
            for f in _factors(u, o):
                x[cols[f]] = 1.0
        rows.append(x)
        ys.append(float(np.clip(drop, *CLIP)))
    coef = np.zeros(len(cols))
    if rows and cols:
        xm, y = np.array(rows), np.array(ys)
        coef = np.linalg.solve(xm.T @ xm + ridge * np.eye(len(cols)), xm.T @ y)
    return [{o: float(sum(coef[cols[f]] for f in _factors(u, o))) for o in row if not o.is_base}
            for u, row in enumerate(allowed)]


def model_drop(cand: Candidate, w: Drops) -> float:
    return sum(w[u].get(o, 0.0) for u, o in enumerate(cand.options) if not o.is_base)


def neighbours(seed: Candidate, allowed: Sequence[List[Option]], max_changes: int = 2
               ) -> Iterator[Candidate]:
    """Every candidate that differs from ``seed`` in 1..``max_changes`` units, each
    changed unit taking another of its allowed options."""
    n = len(seed.options)
    for k in range(1, max_changes + 1):
        for units in itertools.combinations(range(n), k):
            alts = [[o for o in allowed[u] if o != seed.options[u]] for u in units]
            for combo in itertools.product(*alts):
                cand = seed
                for u, o in zip(units, combo):
                    cand = cand.with_option(u, o)
                yield cand


def rank(seeds: Sequence[Tuple[Candidate, float, float]], allowed: Sequence[List[Option]],
         w: Drops, predict, budget_ms: float, skip: set, per_seed: int = 2,
         max_changes: int = 2) -> List[Pick]:
    """The neighbours of ``seeds`` ((candidate, measured drop, measured/predicted
    latency ratio)) predicted within ``budget_ms``, least estimated drop first (ties:
    the slower, i.e. the smallest step past the budget, then fewer changes), at most
    ``per_seed`` per seed; none whose key is in ``skip``."""
    best: Dict[str, Tuple[tuple, Pick]] = {}
    for seed, drop, ratio in seeds:
        base_w = model_drop(seed, w)
        for cand in neighbours(seed, allowed, max_changes):
            if cand.key in skip:
                continue
            pred = predict(cand)
            if pred is None or pred * ratio > budget_ms:
                continue
            est = drop + model_drop(cand, w) - base_w
            nchg = sum(1 for a, b in zip(cand.options, seed.options) if a != b)
            order = (round(est, 9), -pred * ratio, nchg)
            old = best.get(cand.key)
            if old is None or order < old[0]:
                best[cand.key] = (order, Pick(cand, pred * ratio, est, seed.key))
    out: List[Pick] = []
    used: Dict[str, int] = {}
    for _order, pick in sorted(best.values(), key=lambda t: t[0]):
        if used.get(pick.seed, 0) < per_seed:
            out.append(pick)
            used[pick.seed] = used.get(pick.seed, 0) + 1
    return out


# -- the phase -------------------------------------------------------------------------
def local_search(s: Search) -> None:
    """Rounds of ``pick`` -> build, evaluate, measure (see the module docstring)."""
    budget = s.budget()
    if budget is None or s.table is None:
        return
    slowest = 0.0
    tried = idle = 0
    a0 = _acc(s.base_record())
    for round_ in range(s.opts.local_rounds):
        if idle >= s.opts.local_patience:
            s.state.notes.append(f"local search stopped after {round_} round(s): the last "
                                 f"{idle} kept no candidate within the drop limit")
            break
        if choose(s.state, s.goal, budget, s.base.key)[1]:
            break
        per = max(s.per_candidate_s(), slowest)
        room = int(s.time_left() // per)
        if room <= 0:
            s.state.notes.append(f"local search stopped after {round_} round(s): no time "
                                 f"left for a candidate (--search-minutes "
                                 f"{s.opts.search_minutes:g})")
            break
        picks = pick(s, budget)
        if not picks:
            break
        picks = picks[:room]
        s.emit("phase", phase="local", round=round_ + 1, total=len(picks))
        t0 = time.monotonic()
        recs = s.run_batch([p.candidate for p in picks], "local", "local")
        slowest = max(slowest, (time.monotonic() - t0) / len(picks))
        for p, rec in zip(picks, recs):
            rec.predicted_ms = p.predicted_ms
        kept = any(_acc(r) is not None and s.goal.drop_ok(a0, _acc(r)) for r in recs)
        idle = 0 if kept else idle + 1
        tried += len(picks)
        s.save()
    if tried:
        s.state.notes.append(f"local search: {tried} candidate(s) near the best measured "
                             "points (fitted sensitivities, one- and two-unit changes)")


def pick(s: Search, budget: float) -> List[Pick]:
    """This round's candidates: the ranked neighbours of the seeds and the knapsack's
    point for the fitted drops, ``s.opts.local_batch`` at most."""
    base = s.base_record()
    a0 = _acc(base)
    recs = [r for r in s.state.results.values() if _ms(r) is not None and _acc(r) is not None]
    allowed = s.allowed
    samples = [(Candidate.from_list(r.candidate), (a0 - _acc(r)) * 100.0) for r in recs]
    w = fit_drops(samples, allowed)
    predict = _predictor(s)
    skip = {k for k, r in s.state.results.items() if r.measurement is not None or r.build_error}
    seeds = _seeds(s, recs, budget, predict)
    picks = rank(seeds, allowed, w, predict, budget, skip)
    ratios = [ratio for _c, _d, ratio in seeds]
    extra = _knapsack_pick(s, w, budget / float(np.median(ratios)) if ratios else budget,
                           skip, float(np.median(ratios)) if ratios else 1.0)
    if extra is not None and extra.candidate.key not in {p.candidate.key for p in picks}:
        picks.append(extra)
        picks.sort(key=lambda p: p.est_drop)
    return picks[:s.opts.local_batch]


def _predictor(s: Search):
    def predict(cand: Candidate) -> Optional[float]:
        return s.table.predict(cand, s.p.units, s.p.space)
    return predict


def _seeds(s: Search, recs: List[Record], budget: float, predict
           ) -> List[Tuple[Candidate, float, float]]:
    """(candidate, measured drop, measured/predicted ratio) of the three fastest points
    keeping the drop limit but missing the budget, and the two least-lossy points within
    the budget that miss the drop limit."""
    a0 = _acc(s.base_record())
    out = []
    keeps = sorted((r for r in recs if s.goal.drop_ok(a0, _acc(r)) and _ms(r) > budget),
                   key=lambda r: _ms(r))[:3]
    fast = sorted((r for r in recs if not s.goal.drop_ok(a0, _acc(r)) and _ms(r) <= budget),
                  key=lambda r: -_acc(r))[:2]
    for r in keeps + fast:
        cand = Candidate.from_list(r.candidate)
        pred = predict(cand)
        if pred:
            out.append((cand, (a0 - _acc(r)) * 100.0, _ms(r) / pred))
    return out


def _knapsack_pick(s: Search, w: Drops, budget_pred: float, skip: set, ratio: float
                   ) -> Optional[Pick]:
    """The knapsack's least-drop point within ``budget_pred`` (predicted ms), with the
    fitted drops (floored at 0, damage as a tie-break) as costs."""
    costs = [{o: max(0.0, d) + 1e-3 * min(1.0, s.damages[u].get(o, 0.0))
              for o, d in row.items()} for u, row in enumerate(w)]
    front = solve(s.p.units, s.p.space, s.table, costs, s.allowed)
    p = best_under(front, budget_pred)
    if p is None or p.candidate.key in skip:
        return None
    return Pick(p.candidate, p.predicted_ms * ratio, model_drop(p.candidate, w), "knapsack")
