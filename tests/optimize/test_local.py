"""``converters.optimize.local``: the local search after the repair.

The fitted sensitivities and the neighbour ranking are checked on tables whose answer
is known by construction (a chain of units with given per-unit latencies and an
accuracy that is not additive, as fine-tuned pruning is not); the phase itself on the
tiny model of ``tiny.py``, for its time limit."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from converters.optimize import Goal, SpaceSpec, optimize
from converters.optimize.knapsack import best_under, solve
from converters.optimize.latency import LatencyTable
from converters.optimize.local import fit_drops, model_drop, rank
from converters.optimize.space import BASE, Candidate, Option, UnitSpace
from tests.optimize.test_search import CountingMeter, _chain
from tests.optimize.tiny import SPACE, tiny_files

INT8, HALF, INT8_HALF = Option("int8"), Option("fp32", 0.5), Option("int8", 0.5)
OPTS = [BASE, INT8, HALF, INT8_HALF]


def test_fit_recovers_additive_parts_and_corrects_a_combination():
    """With no ridge and additive drops, the fit returns each option's drop as the sum
    of its precision and pruning parts (exact up to float rounding); a measured
    combination that loses more than its probes say raises the weights of the parts
    it holds and of no other."""
    rng = np.random.default_rng(1)
    n = 4
    prec = [float(rng.uniform(0, 0.5)) for _ in range(n)]
    keep = [float(rng.uniform(0, 2.0)) for _ in range(n)]

    def truth(c: Candidate) -> float:
        return sum((prec[u] if o.quantized else 0.0) + (keep[u] if o.keep < 1 else 0.0)
                   for u, o in enumerate(c.options))

    allowed = [list(OPTS) for _ in range(n)]
    base = Candidate.uniform(n, BASE)
    probes = [base.with_option(u, o) for u in range(n) for o in (INT8, HALF)]
    combos = [Candidate(tuple(OPTS[i] for i in rng.choice(len(OPTS), n))) for _ in range(6)]
    w = fit_drops([(c, truth(c)) for c in probes + combos], allowed, ridge=1e-9)
    for u in range(n):
        assert w[u][INT8] == pytest.approx(prec[u], abs=1e-6)
        assert w[u][HALF] == pytest.approx(keep[u], abs=1e-6)
        assert w[u][INT8_HALF] == pytest.approx(prec[u] + keep[u], abs=1e-6)
    # every unit pruned alone loses nothing; units 0 and 1 pruned together lose 4 points
    flat = [(c, 0.0) for c in probes]
    both = base.with_option(0, HALF).with_option(1, HALF)
    w2 = fit_drops(flat + [(both, 4.0)], allowed, ridge=1.0)
    assert w2[0][HALF] > 0.5 and w2[1][HALF] > 0.5
    assert model_drop(both, w2) > 1.0
    for u in (2, 3):
        assert w2[u][HALF] == pytest.approx(0.0, abs=1e-12)
    assert all(w2[u][INT8] == pytest.approx(0.0, abs=1e-12) for u in range(n))


def _problem():
    """A chain of three units. Pruning unit 0 is the big saving but loses 2 points;
    pruning unit 1 or 2 alone loses nothing, both together 3 points; int8 saves little
    and costs nothing. The damages (logit noise) say the opposite of the accuracy for
    pruning: unit 0's pruning looks harmless, units 1 and 2 look costly (what
    fine-tuning does to the logits of a pruned unit)."""
    n = 3
    units = _chain(n)
    space = UnitSpace([list(OPTS) for _ in range(n)], [[] for _ in range(n)])
    deltas = [{INT8: -0.5, HALF: -4.0, INT8_HALF: -4.5},
              {INT8: -0.5, HALF: -2.5, INT8_HALF: -3.0},
              {INT8: -0.5, HALF: -2.5, INT8_HALF: -3.0}]
    table = LatencyTable(10.0, deltas, {})
    damages = [{INT8: 0.001, HALF: 0.01, INT8_HALF: 0.011},
               {INT8: 0.001, HALF: 0.5, INT8_HALF: 0.501},
               {INT8: 0.001, HALF: 0.5, INT8_HALF: 0.501}]

    def accuracy_drop(c: Candidate) -> float:
        pruned = {u for u, o in enumerate(c.options) if o.keep < 1}
        return (2.0 if 0 in pruned else 0.0) + (3.0 if {1, 2} <= pruned else 0.0)

    return units, space, table, damages, accuracy_drop


def _rounds(units, space, table, drop, measured, budget, max_drop, max_changes, rounds):
    """Rounds of fit -> rank (two picks) -> evaluate, as ``local_search`` runs them:
    the first candidate found that meets the goal (None if none in ``rounds``)."""
    allowed = [list(OPTS) for _ in units]

    def predict(c):
        return table.predict(c, units, space)

    measured = dict(measured)
    for _ in range(rounds):
        w = fit_drops(list(measured.values()), allowed)
        fast = sorted((c for c, d in measured.values() if predict(c) <= budget),
                      key=lambda c: measured[c.key][1])[:2]
        slow = sorted((c for c, d in measured.values() if d <= max_drop and predict(c) > budget),
                      key=predict)[:3]
        seeds = [(c, measured[c.key][1], 1.0) for c in slow + fast]
        picks = rank(seeds, allowed, w, predict, budget, set(measured),
                     max_changes=max_changes)[:2]
        assert picks
        for p in picks:
            assert predict(p.candidate) <= budget + 1e-12       # within the budget
            changed = min(sum(a != b for a, b in zip(p.candidate.options, s.options))
                          for s, _d, _r in seeds)
            assert 1 <= changed <= max_changes                  # a neighbour of a seed
            measured[p.candidate.key] = (p.candidate, drop(p.candidate))
            if drop(p.candidate) <= max_drop:
                return p.candidate
    return None


def test_local_rounds_reach_a_goal_the_damage_knapsack_misses():
    """Goal: 6 ms (from 10), at most 0.5 points lost. The knapsack on damages picks
    unit 0's pruning (2 points lost), which is what the repair starts from. The only
    candidates that meet the goal prune unit 1 or 2 alone and put the two others in
    int8: three units away from the knapsack's point, two from a probe. Rounds with
    two-unit changes reach one in two rounds (the first measures what pruning units 1
    and 2 together costs, which the additive fit could not know); one-unit changes do
    not."""
    units, space, table, damages, drop = _problem()
    budget, max_drop = 6.0, 0.5
    knap = best_under(solve(units, space, table, damages, [list(OPTS) for _ in units]),
                      budget)
    assert knap is not None and drop(knap.candidate) > max_drop      # what the repair had
    base = Candidate.uniform(3, BASE)
    measured = {c.key: (c, drop(c)) for c in
                [base] + [base.with_option(u, o) for u in range(3) for o in OPTS[1:]]
                + [knap.candidate]}
    every = [Candidate(c) for c in itertools.product(OPTS, repeat=3)]
    meets = [c for c in every
             if table.predict(c, units, space) <= budget and drop(c) <= max_drop]
    assert meets and not {c.key for c in meets} & set(measured)    # feasible, not yet seen
    found = _rounds(units, space, table, drop, measured, budget, max_drop, 2, rounds=2)
    assert found is not None and found.key in {c.key for c in meets}
    assert found.options[0].keep == 1.0
    assert _rounds(units, space, table, drop, measured, budget, max_drop, 1, rounds=2) is None


def test_local_phase_starts_no_round_past_the_time_limit(tmp_path):
    """A search whose time is up before the local phase (building and timing the
    baselines alone takes longer than 60 ms) and whose goal is missed reaches the phase, says it stopped for
    time, and runs no local candidate."""
    model, npz = tiny_files(str(tmp_path))
    res = optimize(model, evaluate=npz, goal=Goal(speedup=50.0, max_drop=0.0),
                   meter=CountingMeter(), space=SpaceSpec(**SPACE), out_dir=str(tmp_path / "o"),
                   search_minutes=0.001)
    assert not res.met
    assert res.state.elapsed_s > 0.06
    assert not [r for r in res.state.results.values() if "local" in r.kinds]
    assert any(n.startswith("local search stopped after 0 round(s): no time left")
               for n in res.state.notes)
