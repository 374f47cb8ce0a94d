"""The phases of a search, in order (``run``); see ``search.py`` for the plan."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np

from converters.optimize.knapsack import FrontPoint, best_under, solve
from converters.optimize.latency import LatencyTable
from converters.optimize.local import local_search
from converters.optimize.search import Search, _acc, _ms, choose, corrected_ms, is_scored
from converters.optimize.space import BASE, Candidate, Option
from converters.optimize.state import Record
from edgert.errors import EdgertError

INT8 = ("int8", "int8-mixed")


@dataclass
class Outcome:
    """How the search ended."""

    chosen: Optional[Record]
    met: bool
    budget_ms: Optional[float]
    base: Record
    message: str
    predictions: List[Dict[str, Any]] = field(default_factory=list)


def run(s: Search) -> Outcome:
    excluded = baselines(s)
    probes(s, excluded)
    build_table(s)
    make_front(s, excluded)
    finalists(s)
    repair(s)
    local_search(s)
    return finish(s)


# -- 1. baselines -------------------------------------------------------------------------
def uniform(s: Search, opt: Option) -> Candidate:
    """``opt`` on every unit that offers it; the nearest option it offers elsewhere
    (no pruning where a unit has no local channels, int8 where it has no mixed list)."""
    opts = []
    for u in s.p.units:
        offered = s.p.space.options[u.index]
        precision = opt.precision if opt.precision != "int8-mixed" or any(
            o.precision == "int8-mixed" for o in offered) else "int8"
        tries = [Option(precision, opt.keep, opt.sparsity), Option(precision, opt.keep, 0.0),
                 Option(precision, 1.0, 0.0), BASE]
        opts.append(next(o for o in tries if o in offered))
    return Candidate(tuple(opts))


def uniform_options(s: Search) -> List[Option]:
    spec = s.p.spec
    opts = [Option(p) for p in spec.precisions if p != "fp32"]
    opts += [Option("fp32", k) for k in spec.keeps if k < 1.0]
    if "int8" in spec.precisions:
        opts += [Option("int8", k) for k in spec.keeps if k < 1.0]
    opts += [Option("fp32", 1.0, sp) for sp in spec.sparsities if sp > 0.0]
    return opts


def baselines(s: Search) -> Set[str]:
    """The uniform choices; the precisions that leave the search (int8 slower here)."""
    cands = [s.base] + [uniform(s, o) for o in uniform_options(s)]
    cands = list({c.key: c for c in cands}.values())
    s.emit("phase", phase="baselines", total=len(cands))
    s.run_batch(cands, "uniform", "baselines")
    base = s.base_record()
    if base.build_error or _ms(base) is None or _acc(base) is None:
        why = base.build_error or (base.measurement or {}).get("error") or "not evaluated"
        raise EdgertError(f"the fp32 model could not be built, evaluated and measured: {why}")
    int8 = (s.state.results.get(uniform(s, Option("int8")).key)
            if "int8" in s.p.spec.precisions else None)     # else uniform() is the base
    excluded: Set[str] = set()
    if int8 is not None and _ms(int8) is not None and _ms(int8) >= _ms(base):
        excluded = set(INT8)
        note = (f"int8 is not faster than fp32 on this device ({_ms(int8):.3f} ms against "
                f"{_ms(base):.3f} ms uniform): int8 options leave the search")
        if note not in s.state.notes:
            s.state.notes.append(note)
    return excluded


# -- 2. probes ----------------------------------------------------------------------------
def probe_candidates(s: Search, excluded: Set[str]) -> List[Tuple[Candidate, str]]:
    """Single-unit changes, int8 first, then each pair of int8 neighbours, then the rest
    (so a search cut short by its time limit has the cheapest probes of every unit)."""
    space = s.p.space
    every: List[Option] = []
    for opts in space.options:
        every += [o for o in opts if not o.is_base and o not in every
                  and o.precision not in excluded]
    every.sort(key=lambda o: (o != Option("int8"), -o.keep, o.sparsity, o.precision))
    out: List[Tuple[Candidate, str]] = []
    for o in every:
        out += [(s.base.with_option(u.index, o), "probe") for u in s.p.units
                if o in space.options[u.index]]
        if o == Option("int8"):
            for k in range(s.n - 1):
                if o in space.options[k] and o in space.options[k + 1]:
                    out.append((s.base.with_option(k, o).with_option(k + 1, o), "pair"))
    return out


def probes(s: Search, excluded: Set[str]) -> None:
    todo = probe_candidates(s, excluded)
    s.emit("phase", phase="probes", total=len(todo))
    per = _per_candidate_s(s)
    reserve = max(0.2 * s.opts.search_minutes * 60.0,
                  per * (s.opts.front_points + 3 * s.opts.repair_rounds))
    skipped = 0
    for i in range(0, len(todo), s.opts.batch):
        chunk = todo[i:i + s.opts.batch]
        fresh = [c for c, _ in chunk if _ms(s.state.results.get(c.key, Record([]))) is None]
        if fresh and s.time_left() - reserve < per * len(fresh):
            skipped = len(todo) - i
            break
        for kind in ("probe", "pair"):
            part = [c for c, k in chunk if k == kind]
            if part:
                s.run_batch(part, kind, "probes")
        per = _per_candidate_s(s)
    if skipped:
        s.state.notes.append(f"{skipped} probe(s) skipped to stay within --search-minutes "
                             f"{s.opts.search_minutes:g}: those options were not searched")


def _per_candidate_s(s: Search) -> float:
    return s.per_candidate_s()


# -- 3. table and front ---------------------------------------------------------------------
#: the probes' control is the median of the fp32 control over this many probe batches
#: on each side (see ``probe_latencies``)
CONTROL_WINDOW = 2


def probe_latencies(results: Dict[str, Record], l0: float) -> Dict[str, float]:
    """Each probe's and pair's latency relative to the fp32 control, in ``l0``'s ms.

    The control is the median of the controls of the probe batches within
    ``CONTROL_WINDOW`` batches of its own, not its batch's one reading: a device drifts
    slowly, but one session's minimum does not (the zoo MobileNetV2's controls: 2.32-2.39
    ms, and twice 2.48 ms between them; scaled by such a reading, every probe of that
    batch came out 3.5 % of the whole model too fast, and a uniform candidate sums 16 of
    them). Replayed on the stored searches this keeps every prediction made before
    measurement within 10 % (226 of 226, against 223 with each batch's own control)."""
    recs = [(k, r) for k, r in results.items()
            if {"probe", "pair"} & set(r.kinds) and _ms(r) is not None]
    order: Dict[Any, Optional[float]] = {}
    for _key, r in recs:
        order.setdefault(_batch(r), (r.measurement or {}).get("control_ms"))
    ids = list(order)           # measurement order: numbered batches, else as stored
    if all(isinstance(b, int) for b in ids):
        ids.sort()
    smooth: Dict[Any, Optional[float]] = {}
    for i, b in enumerate(ids):
        near = [order[c] for c in ids[max(0, i - CONTROL_WINDOW):i + CONTROL_WINDOW + 1]]
        near = [c for c in near if c]
        smooth[b] = float(np.median(near)) if near and order[b] else None
    out = {}
    for k, r in recs:
        ms, ctl = _ms(r), smooth[_batch(r)]
        out[k] = ms * l0 / ctl if ctl else ms
    return out


def _batch(rec: Record) -> Any:
    m = rec.measurement or {}
    b = m.get("batch")
    return int(b) if b is not None else ("control", m.get("control_ms"))


def table_from(results: Dict[str, Record], n: int, l0: float) -> LatencyTable:
    """The probes' table: per unit and option the probe's latency minus the fp32 one,
    per cut the int8 pair's latency minus both probes' (``probe_latencies``)."""
    lat = probe_latencies(results, l0)
    deltas: List[Dict[Option, float]] = [{} for _ in range(n)]
    for key, rec in results.items():
        if "probe" in rec.kinds and key in lat:
            cand = Candidate.from_list(rec.candidate)
            (u,) = cand.changed()
            deltas[u][cand.options[u]] = lat[key] - l0
    kappa: Dict[int, float] = {}
    o = Option("int8")
    for key, rec in results.items():
        if "pair" in rec.kinds and key in lat:
            k = Candidate.from_list(rec.candidate).changed()[0]
            if o in deltas[k] and o in deltas[k + 1]:
                kappa[k] = lat[key] - l0 - deltas[k][o] - deltas[k + 1][o]
    return LatencyTable(l0, deltas, kappa)


def build_table(s: Search) -> None:
    base = s.base_record()
    l0, a0 = _ms(base), _acc(base)
    s.damages = [{} for _ in range(s.n)]
    s.drops = [{} for _ in range(s.n)]
    for rec in s.state.results.values():
        if "probe" not in rec.kinds or _ms(rec) is None or _acc(rec) is None:
            continue
        cand = Candidate.from_list(rec.candidate)
        (u,) = cand.changed()
        o = cand.options[u]
        dmg = rec.evaluation.get("damage")
        s.damages[u][o] = dmg if dmg is not None else max(0.0, a0 - _acc(rec))
        s.drops[u][o] = (a0 - _acc(rec)) * 100.0
    s.raw_table = s.table = table_from(s.state.results, s.n, l0)
    for u in range(s.n):        # an option without an evaluation is not in the table
        s.raw_table.deltas[u] = {o: d for o, d in s.raw_table.deltas[u].items()
                                 if o in s.drops[u]}
    s.refit()     # the baselines measured so far correct it already


def allowed_options(s: Search, excluded: Set[str]) -> List[List[Option]]:
    """Per unit: measured options whose own accuracy drop keeps the limit."""
    out = []
    for u in s.p.units:
        row = []
        for o in s.p.space.options[u.index]:
            if o.is_base:
                row.append(o)
            elif (o.precision not in excluded and o in s.damages[u.index]
                  and (s.goal.max_drop is None or s.drops[u.index][o] <= s.goal.max_drop)):
                row.append(o)
        out.append(row)
    return out


def make_front(s: Search, excluded: Set[str]) -> None:
    s.allowed = allowed_options(s, excluded)
    s.front = solve(s.p.units, s.p.space, s.table, s.damages, s.allowed)
    s.emit("phase", phase="front", total=len(s.front))


# -- 4. finalists and repair ---------------------------------------------------------------
def spread(front: List[FrontPoint], k: int) -> List[FrontPoint]:
    """Up to ``k`` front points spaced evenly in predicted latency."""
    if len(front) <= k:
        return list(front)
    lo, hi = front[0].predicted_ms, front[-1].predicted_ms
    out: List[FrontPoint] = []
    for i in range(k):
        t = lo + (hi - lo) * i / max(1, k - 1)
        p = min(front, key=lambda q: abs(q.predicted_ms - t))
        if p not in out:
            out.append(p)
    return out


def _run_points(s: Search, points: List[FrontPoint], kind: str) -> List[Record]:
    recs = s.run_batch([p.candidate for p in points], kind, kind)
    for p, rec in zip(points, recs):
        rec.predicted_ms = p.predicted_ms
    s.save()
    return recs


def finalists(s: Search) -> None:
    budget = s.budget()
    points = spread(s.front, s.opts.front_points)
    if budget is not None:
        target = best_under(s.front, budget) or s.front[0]
        points = [target] + [p for p in points if p is not target]
    s.emit("phase", phase="finalists", total=len(points))
    _run_points(s, points, "front")


def repair(s: Search) -> None:
    """Solve again without a suspect choice, or for a tightened budget, while the goal is
    missed and time and rounds remain."""
    budget = s.budget()
    forbidden: List[Set[Option]] = [set() for _ in range(s.n)]
    for round_ in range(s.opts.repair_rounds):
        chosen, met = choose(s.state, s.goal, budget, s.base.key)
        if met or s.time_left() <= 0:
            return
        current = _current(s, budget)
        if current is None:
            return
        points = _neighbours(s, current, budget, forbidden)
        if not points:
            return
        s.emit("phase", phase="repair", round=round_ + 1, total=len(points))
        _run_points(s, points, "repair")


def _current(s: Search, budget: Optional[float]) -> Optional[Record]:
    """The best-accuracy front/repair record that fits the budget (else the fastest)."""
    recs = [r for r in s.state.results.values() if {"front", "repair"} & set(r.kinds)
            and _ms(r) is not None and _acc(r) is not None]
    if not recs:
        return None
    if budget is not None:
        fits = [r for r in recs if r.predicted_ms is not None and r.predicted_ms <= budget]
        if fits:
            return max(fits, key=lambda r: (_acc(r), -_ms(r)))
    return min(recs, key=lambda r: _ms(r))


def _neighbours(s: Search, rec: Record, budget: Optional[float],
                forbidden: List[Set[Option]]) -> List[FrontPoint]:
    """New points: under a budget the measured latency missed, the point for a budget
    tightened by that error; for a missed drop limit, the best point without each of
    the record's most damaging choices in turn."""
    cand = Candidate.from_list(rec.candidate)
    out: List[FrontPoint] = []
    if budget is not None and _ms(rec) > budget and rec.predicted_ms:
        p = best_under(s.front, budget * rec.predicted_ms / _ms(rec))
        if p is not None:
            out.append(p)
    base_acc = _acc(s.base_record())
    if not s.goal.drop_ok(base_acc, _acc(rec)):
        worst = sorted(cand.changed(), key=lambda u: -s.damages[u].get(cand.options[u], 0.0))
        for u in worst[:3]:
            forbid = [set(f) for f in forbidden]
            forbid[u].add(cand.options[u])
            allowed = [[o for o in row if o not in forbid[i]] for i, row in enumerate(s.allowed)]
            front = solve(s.p.units, s.p.space, s.table, s.damages, allowed)
            p = best_under(front, budget) if budget is not None else (front[0] if front else None)
            if p is not None:
                out.append(p)
        if worst:
            forbidden[worst[0]].add(cand.options[worst[0]])
    seen = set(s.state.results)
    return [p for p in {p.candidate.key: p for p in out}.values()
            if p.candidate.key not in seen or s.state.results[p.candidate.key].measurement is None]


# -- 5. the end ------------------------------------------------------------------------------
def finish(s: Search) -> Outcome:
    budget = s.budget()
    chosen, met = choose(s.state, s.goal, budget, s.base.key)
    base = s.base_record()
    preds = predictions(s)
    if chosen is None:
        msg = "no candidate was measured"
    elif met:
        msg = (f"chosen: {chosen.label}: {_ms(chosen):.3f} ms "
               f"({_ms(base) / _ms(chosen):.2f}x faster than fp32), accuracy "
               f"{_acc(chosen) * 100:.2f}% (fp32 {_acc(base) * 100:.2f}%)")
    else:
        msg = (f"the goal ({s.goal.describe()}) cannot be met with this space on this device; "
               f"closest: {chosen.label}: {_ms(chosen):.3f} ms"
               + (f" against a budget of {budget:.3f} ms" if budget is not None else "")
               + f", accuracy {_acc(chosen) * 100:.2f}% (fp32 {_acc(base) * 100:.2f}%)")
    s.state.chosen = None if chosen is None else Candidate.from_list(chosen.candidate).key
    s.state.summary = {"met": met, "budget_ms": budget, "message": msg,
                       "base_ms": _ms(base), "base_accuracy": _acc(base)}
    s.save("done" if met else "infeasible")
    return Outcome(chosen, met, budget, base, msg, preds)


def predictions(s: Search) -> List[Dict[str, Any]]:
    """Predicted against measured for every measured candidate the table was not built
    from (uniform choices, front points, repairs, local search); the error is against
    the latency relative to its batch's fp32 control, as the table's entries are.

    ``basis`` says which prediction: ``before`` is the one made before the candidate
    was measured (``Record.prior_ms``: the table corrected by the earlier batches);
    ``table`` is the probes' table alone, for the baselines that were measured before
    any table existed (the correction's first samples, never fitted to themselves)."""
    out = []
    l0 = _ms(s.base_record())
    for key, rec in s.state.results.items():
        if key == s.base.key or not is_scored(rec) or _ms(rec) is None:
            continue
        basis, pred = "before", rec.prior_ms
        if pred is None:
            basis = "table"
            pred = s.raw_table.predict(Candidate.from_list(rec.candidate), s.p.units, s.p.space)
        if pred is None:
            continue
        rec.predicted_ms = pred
        got = corrected_ms(rec, l0)
        out.append({"key": key, "label": rec.label, "kinds": rec.kinds, "basis": basis,
                    "predicted_ms": pred, "measured_ms": _ms(rec), "corrected_ms": got,
                    "error": (pred - got) / got})
    return out
