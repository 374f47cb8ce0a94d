"""``latency.fit_correction``: the online correction of the per-unit latency table.

Synthetic tables and latencies (no device): the correction must recover a latency
function the table's sum gets wrong, fold into a table the knapsack can use, and
stay the plain table when nothing was measured."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from converters.optimize.knapsack import solve
from converters.optimize.latency import (CUT, Correction, LatencyTable, fit_correction,
                                         option_class)
from converters.optimize.space import Candidate, Option, UnitSpace
from converters.optimize.units import Unit

OPTS = [Option(), Option("int8"), Option("fp32", 0.5), Option("int8", 0.5)]


def _chain(n):
    return [Unit(index=i, name=f"u{i}", nodes=[f"n{i}"], op_types=["Conv"], outputs=[f"t{i}"],
                 input=f"t{i - 1}", output=f"t{i}", readers=[f"n{i}"], writer=f"n{i}")
            for i in range(n)]


def _world(n=4, seed=0):
    rng = np.random.default_rng(seed)
    units = _chain(n)
    space = UnitSpace([list(OPTS) for _ in range(n)], [[] for _ in range(n)])
    deltas = [{o: float(-rng.uniform(0.05, 0.5)) for o in OPTS[1:]} for _ in range(n)]
    table = LatencyTable(4.0, deltas, {k: float(-rng.uniform(0.02, 0.1)) for k in range(n - 1)})
    every = [Candidate(tuple(c)) for c in itertools.product(OPTS, repeat=n)]
    return units, space, table, every


def _true_ms(table, cand, units, space):
    """A device the table's sum gets wrong: int8 saves 25 % less than the probes say in
    combination, pruning 40 % more, the int8 pairs save nothing, and unit 2 at int8 keep
    0.5 costs 0.3 ms more than its probe (a kernel chosen for that shape)."""
    t = table.terms(cand, units, space)
    ms = table.base_ms + 0.75 * t.get("int8", 0.0) + 1.4 * t.get("pruned", 0.0) \
        + 1.4 * t.get("int8 pruned", 0.0) + 0.0 * t.get(CUT, 0.0)
    return ms + (0.3 if cand.options[2] == Option("int8", 0.5) else 0.0)


def test_recovers_a_non_additive_latency_function_exactly():
    """Fitted to measured combinations of a device whose latencies are not the table's
    sum (other factors per option class and at the cuts, one unit-option offset), the
    correction predicts every combination it was not fitted to exactly (up to the
    vanishing ridge), where the table alone is off by up to tens of per cent."""
    units, space, table, every = _world()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(every))
    fit_on = [every[i] for i in order[:60]]
    held = [every[i] for i in order[60:]]
    corr = fit_correction(table, [(c, _true_ms(table, c, units, space)) for c in fit_on],
                          units, space, ridge_scale=1e-12, ridge_offset=1e-12)
    raw_err = max(abs(table.predict(c, units, space) / _true_ms(table, c, units, space) - 1)
                  for c in held)
    assert raw_err > 0.15                      # the sum alone is far off on this device
    for c in held:
        want = _true_ms(table, c, units, space)
        assert corr.predict(table, c, units, space) == pytest.approx(want, rel=1e-7)


def test_no_samples_is_the_table_and_a_negative_cut_factor_is_fixed_at_zero():
    units, space, table, every = _world()
    empty = fit_correction(table, [], units, space)
    for c in every:
        assert empty.predict(table, c, units, space) == pytest.approx(
            table.predict(c, units, space), rel=1e-12)
    # a device where int8 pairs *cost* 0.05 ms more than their probes: the table's
    # conversions cannot be negative, so the fit keeps the cut factor at 0, not below
    def ms(c):
        t = table.terms(c, units, space)
        return table.predict(c, units, space) - t.get(CUT, 0.0) + 0.05 * sum(
            1 for a, b in zip(c.options, c.options[1:]) if a.quantized and b.quantized)
    corr = fit_correction(table, [(c, ms(c)) for c in every], units, space)
    assert corr.scales[CUT] == 0.0


def test_one_biased_combination_moves_its_class():
    """After one measured uniform int8 point that is 10 % slower than the table says,
    another int8 mix (half the units) is predicted closer than by the table alone, and a
    pruned fp32 point (another class) is not moved."""
    units, space, table, _ = _world()
    n = len(units)
    uni = Candidate.uniform(n, Option("int8"))
    corr = fit_correction(table, [(uni, table.predict(uni, units, space) * 1.10)], units, space)
    half = Candidate(tuple(Option("int8") if u % 2 else Option() for u in range(n)))
    truth = table.predict(half, units, space) + 0.5 * (
        table.predict(uni, units, space) * 0.10)      # half the units, half the bias
    assert abs(corr.predict(table, half, units, space) - truth) < \
        abs(table.predict(half, units, space) - truth) / 2
    pruned = Candidate.uniform(n, Option("fp32", 0.5))
    assert corr.predict(table, pruned, units, space) == pytest.approx(
        table.predict(pruned, units, space), rel=1e-12)


def test_the_corrected_table_predicts_what_the_correction_does_and_the_knapsack_uses_it():
    units, space, table, every = _world()
    rng = np.random.default_rng(2)
    corr = Correction({"int8": 0.8, "pruned": 1.3, "int8 pruned": 1.1, CUT: 0.5},
                      {(u, o): float(rng.uniform(-0.1, 0.1)) for u in range(len(units))
                       for o in OPTS[1:]})
    fixed = table.corrected(corr)
    for c in every:
        assert fixed.predict(c, units, space) == pytest.approx(
            corr.predict(table, c, units, space), rel=1e-12, abs=1e-12)
    damages = [{o: float(rng.uniform(0, 1)) for o in OPTS[1:]} for _ in units]
    res = 1e-5
    for p in solve(units, space, fixed, damages, resolution=res):
        assert p.predicted_ms == pytest.approx(corr.predict(table, p.candidate, units, space),
                                               abs=res * (len(units) + 1))


def test_option_classes():
    assert [option_class(o) for o in OPTS] == ["fp32", "int8", "pruned", "int8 pruned"]
    assert option_class(Option("int8-mixed")) == "int8"
    assert option_class(Option("fp32", 1.0, 0.75)) == "sparse"


def test_hit_rates_count_predictions_made_before_measurement_apart():
    from converters.optimize.report import hit_rates

    preds = [{"basis": "before", "error": 0.02}, {"basis": "before", "error": -0.09},
             {"basis": "before", "error": 0.2}, {"basis": "table", "error": -0.6}]
    lines = hit_rates(preds)
    assert lines[0].startswith("predicted before measurement: 2 of 3 within +-10 % (67 %)")
    assert "9.0 %" in lines[0] and "worst 20.0 %" in lines[0]          # median, worst
    assert lines[1].startswith("baselines, measured before the table (table alone): 0 of 1")
    assert lines[2].startswith("all measured candidates: 2 of 4 within +-10 % (50 %)")
    assert hit_rates([]) == []
