"""``converters.optimize``: the search on a tiny model, in process on this host.

The model has four units (stem, residual block, head, classifier); the space is
fp32/int8 and channel keep 1/0.5, so a whole search is some twenty candidates.
Latencies are this CPU's, so no test asserts a speed: each asserts what the search
must do with whatever was measured (the budget kept, the most accurate point that
keeps it chosen, the closest point named when nothing does, nothing measured twice
after a resume)."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from converters.optimize import Goal, HostMeter, MeterError, SpaceSpec, optimize
from converters.optimize.knapsack import solve
from converters.optimize.latency import LatencyTable, fit_correction
from converters.optimize.search import SearchStopped, corrected_ms, is_scored
from converters.optimize.space import Candidate, Option, UnitSpace
from converters.optimize.units import Unit
from edgert.errors import InputError
from tests.optimize.tiny import SPACE, tiny_files


class CountingMeter(HostMeter):
    """This host's meter, remembering every file it timed."""

    def __init__(self) -> None:
        super().__init__(threads=1, runs=10, warmup=2)
        self.timed: list = []
        self.calls: list = []          # the paths of each measure() call (one batch), in order

    def measure(self, paths, label=""):
        self.timed += list(paths)
        self.calls.append(list(paths))
        return super().measure(paths, label)


class DroppingMeter(CountingMeter):
    """A device that stops answering after ``limit`` files (what it finished is kept)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def measure(self, paths, label=""):
        done = {}
        for p in paths:
            if len(self.timed) >= self.limit:
                raise MeterError("device gone: no answer", done)
            done.update(super().measure([p], label))
        return done


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_files(str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def searched(tiny, tmp_path_factory):
    """One search: at least as fast as fp32 (speed-up 1x), at most 2 points lost."""
    model, npz = tiny
    out = str(tmp_path_factory.mktemp("search"))
    meter = CountingMeter()
    res = optimize(model, evaluate=npz, goal=Goal(speedup=1.0, max_drop=2.0), meter=meter,
                   space=SpaceSpec(**SPACE), out_dir=out, search_minutes=5)
    return res, out, meter


def _control(state) -> str:
    n = len(state.units)
    return state.results[Candidate.uniform(n, Option()).key].built["path"]


def _base(rows):
    return next(r for r in rows if r["role"] == "fp32" or r["label"] == "uniform fp32")


def test_search_finishes_in_seconds_and_keeps_the_budget(searched, tiny):
    res, out, _ = searched
    assert res.state.elapsed_s < 60
    assert res.met and res.chosen is not None
    base = _base(res.rows)
    budget = base["ms"]                      # speed-up 1x: the fp32 model's own latency
    chosen = res.chosen
    assert chosen["ms"] <= budget
    assert (base["accuracy"] - chosen["accuracy"]) * 100 <= 2.0 + 1e-9
    # the most accurate of every measured point that keeps both limits
    fits = [r for r in res.rows if r["ms"] <= budget
            and (base["accuracy"] - r["accuracy"]) * 100 <= 2.0 + 1e-9]
    assert chosen["accuracy"] == max(r["accuracy"] for r in fits)
    # the accuracy that counts is the written file's, run by edgert
    import edgert

    with np.load(tiny[1]) as z:
        x, labels = z["x"], z["labels"]
    with edgert.load(res.chosen_path, threads=1) as sess:
        name = sess.inputs[0].name
        pred = [np.asarray(next(iter(sess.run({name: x[i:i + 1]}).values()))).argmax()
                for i in range(len(x))]
    assert float(np.mean(np.asarray(pred) == labels)) == chosen["accuracy"]
    for f in ("report.md", "report.json", "front.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0


def test_latency_table_is_the_measured_probes(searched):
    """Each entry of the table is a probe's measured latency, relative to the fp32 file
    timed in the probe batches around its own (the median of their controls, two
    batches each side), minus the fp32 latency."""
    res, _, _ = searched
    st = res.state
    table = LatencyTable.from_dict(st.table)
    n = len(st.units)
    base_ms = next(r.measurement["latency_ms"] for k, r in st.results.items()
                   if r.candidate == Candidate.uniform(n, Option()).to_list())
    assert table.base_ms == base_ms
    probes = [r for r in st.results.values() if "probe" in r.kinds and r.measurement
              and r.measurement.get("ok")]
    assert probes
    controls = {}       # probe and pair batches: their fp32 control, in batch order
    for r in st.results.values():
        if {"probe", "pair"} & set(r.kinds) and r.measurement and r.measurement.get("ok"):
            controls[r.measurement["batch"]] = r.measurement["control_ms"]
    batches = sorted(controls)
    assert len(batches) >= 2
    for rec in probes:
        cand = Candidate.from_list(rec.candidate)
        (u,) = cand.changed()
        i = batches.index(rec.measurement["batch"])
        ctl = float(np.median([controls[b] for b in batches[max(0, i - 2):i + 3]]))
        assert table.deltas[u][cand.options[u]] == pytest.approx(
            rec.measurement["latency_ms"] * base_ms / ctl - base_ms, rel=1e-9, abs=1e-12)


def test_each_prediction_is_made_before_its_candidate_is_measured(tiny, tmp_path):
    """Every candidate scored with a prediction made before measurement (``prior_ms``)
    got exactly the table corrected by the multi-unit candidates of the *earlier*
    batches (the meter's calls, in order), never by its own batch or itself; the
    baselines measured before the table are scored by the table alone. (A drop limit
    alone, so every option is allowed and the front has new points to measure.)"""
    meter = CountingMeter()
    res = optimize(tiny[0], evaluate=tiny[1], goal=Goal(max_drop=100.0), meter=meter,
                   space=SpaceSpec(**SPACE), out_dir=str(tmp_path), search_minutes=5)
    st = res.state
    units = [Unit.from_dict(u) for u in st.units]
    space = UnitSpace.from_dict(st.space)
    raw = LatencyTable.from_dict(st.table)
    l0 = raw.base_ms
    call_of = {}
    for i, paths in enumerate(meter.calls):
        for p in paths:
            call_of.setdefault(p, i)
    base_key = Candidate.uniform(len(units), Option()).key
    scored = [(k, r) for k, r in st.results.items() if k != base_key and is_scored(r)
              and r.measurement and r.measurement.get("ok")]
    before = [(k, r) for k, r in scored if r.prior_ms is not None]
    assert before, "the search scored no candidate predicted before measurement"
    for _key, rec in before:
        mine = call_of[rec.built["path"]]
        earlier = [(Candidate.from_list(r.candidate), corrected_ms(r, l0)) for k, r in scored
                   if call_of[r.built["path"]] < mine]
        corr = fit_correction(raw, earlier, units, space)
        cand = Candidate.from_list(rec.candidate)
        assert rec.prior_ms == pytest.approx(corr.predict(raw, cand, units, space), rel=1e-9)
    by_key = {p["key"]: p for p in res.predictions}
    for key, rec in scored:
        p = by_key[key]
        if rec.prior_ms is None:          # measured before the table: the table alone
            assert p["basis"] == "table"
            assert p["predicted_ms"] == pytest.approx(
                raw.predict(Candidate.from_list(rec.candidate), units, space), rel=1e-12)
        else:
            assert p["basis"] == "before" and p["predicted_ms"] == rec.prior_ms


def test_decisions_table_follows_the_chosen_candidate(searched):
    res, out, _ = searched
    import json

    report = json.load(open(os.path.join(out, "report.json")))
    key = res.state.chosen
    cand = Candidate.from_list(res.state.results[key].candidate)
    units = {u["name"]: u["index"] for u in res.state.units}
    assert report["decisions"]
    for d in report["decisions"]:
        assert d["precision"] == cand.options[units[d["unit"]]].precision


def test_unreachable_budget_says_so_with_the_closest_point(searched, tiny):
    """Resumed with a budget no model can meet: not met, the fastest measured point is
    written and named, and nothing already measured is measured again (the front's
    points for the new budget may be new)."""
    res, out, _ = searched
    control = _control(res.state)       # the fp32 file, timed again in every batch
    before = {r.built["path"] for r in res.state.results.values() if r.measurement} - {control}
    meter = CountingMeter()
    again = optimize(tiny[0], evaluate=tiny[1], goal=Goal(latency_ms=1e-6), meter=meter,
                     space=SpaceSpec(**SPACE), out_dir=out, resume=res.search_id,
                     search_minutes=5)
    assert not again.met
    assert "cannot be met" in again.message and "closest" in again.message
    fastest = min(again.rows, key=lambda r: (r["ms"], -r["accuracy"]))
    assert again.chosen["key"] == fastest["key"]
    assert fastest["label"] in again.message
    assert os.path.isfile(again.chosen_path)
    assert not set(meter.timed) & before       # new front points only, if any
    assert again.state.status == "infeasible"


def test_device_dropping_mid_search_resumes(tiny, tmp_path):
    model, npz = tiny
    out = str(tmp_path)
    dropping = DroppingMeter(limit=9)
    with pytest.raises(SearchStopped) as info:
        optimize(model, evaluate=npz, goal=Goal(max_drop=2.0), meter=dropping,
                 space=SpaceSpec(**SPACE), out_dir=out, search_minutes=5)
    files = [f for f in os.listdir(out) if f.endswith(".search.json")]
    assert len(files) == 1
    search_id = files[0][:-len(".search.json")]
    assert search_id in str(info.value)
    assert len(dropping.timed) == 9           # the ninth finished before the drop
    meter = CountingMeter()
    res = optimize(model, evaluate=npz, goal=Goal(max_drop=2.0), meter=meter,
                   space=SpaceSpec(**SPACE), out_dir=out, resume=search_id, search_minutes=5)
    assert res.met and res.search_id == search_id
    control = _control(res.state)       # the fp32 file, timed again in every batch
    assert meter.timed and not (set(meter.timed) & set(dropping.timed)) - {control}
    measured = [r for r in res.state.results.values() if r.measurement and
                r.measurement.get("ok")]
    assert len(measured) == len(set(dropping.timed) | set(meter.timed))


def test_resume_refuses_another_space(searched, tiny):
    res, out, _ = searched
    with pytest.raises(Exception, match="differs in space"):
        optimize(tiny[0], evaluate=tiny[1], goal=Goal(max_drop=1.0), out_dir=out,
                 space=SpaceSpec(precisions=("fp32", "int8"), keeps=(1.0, 0.75)),
                 resume=res.search_id)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "give a goal"),
    ({"latency_ms": -1.0}, "positive"),
    ({"latency_ms": 1.0, "speedup": 2.0}, "not both"),
    ({"max_drop": 120.0}, "0 to 100"),
])
def test_bad_goals_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        Goal(**kwargs)


def _chain(n):
    return [Unit(index=i, name=f"u{i}", nodes=[f"n{i}"], op_types=["Conv"], outputs=[f"t{i}"],
                 input=f"t{i - 1}", output=f"t{i}", readers=[f"n{i}"], writer=f"n{i}")
            for i in range(n)]


def test_knapsack_front_matches_brute_force():
    """On a random table of four units, every front point is the least-damage candidate
    among all those predicted at or under its latency (checked by enumeration), and its
    predicted latency is the table's prediction of it (within the DP's bins)."""
    rng = np.random.default_rng(3)
    n = 4
    opts = [Option(), Option("int8"), Option("fp32", 0.5), Option("int8", 0.5)]
    units = _chain(n)
    space = UnitSpace([list(opts) for _ in range(n)], [[] for _ in range(n)])
    deltas = [{o: float(-rng.uniform(0.05, 1.0)) for o in opts[1:]} for _ in range(n)]
    damages = [{o: float(rng.uniform(0.0, 1.0)) for o in opts[1:]} for _ in range(n)]
    table = LatencyTable(10.0, deltas, {k: float(-rng.uniform(0.0, 0.2)) for k in range(n - 1)})
    res = 1e-4
    front = solve(units, space, table, damages, resolution=res)
    every = []
    for combo in itertools.product(opts, repeat=n):
        cand = Candidate(tuple(combo))
        dmg = sum(0.0 if o.is_base else damages[i][o] for i, o in enumerate(combo))
        every.append((table.predict(cand, units, space), dmg))
    assert front
    slack = res * (n + 1)
    for p in front:
        assert p.predicted_ms == pytest.approx(table.predict(p.candidate, units, space),
                                               abs=slack)
        faster = [d for ms, d in every if ms <= p.predicted_ms - slack]
        if faster:
            assert p.damage <= min(faster) + 1e-9
    assert len(front) >= 3       # a front, not a point: the table trades latency for damage
    # the fastest candidate of all is on the front
    assert front[0].predicted_ms == pytest.approx(min(ms for ms, _ in every), abs=slack)


def test_a_search_without_int8_prunes_only_and_says_nothing_of_int8(tiny, tmp_path):
    """``precisions=("fp32",)`` (a device whose int8 kernels are not fast, emulated):
    every candidate is float, and no note compares an int8 model that was never built
    (the uniform int8 choice falls back to the fp32 base in that space)."""
    model, npz = tiny
    res = optimize(model, evaluate=npz, goal=Goal(speedup=1.0, max_drop=2.0),
                   meter=CountingMeter(), space=SpaceSpec(precisions=("fp32",), keeps=(1.0, 0.5)),
                   out_dir=str(tmp_path), search_minutes=5)
    cands = [Candidate.from_list(r.candidate) for r in res.state.results.values()]
    assert cands and all(o.precision == "fp32" for c in cands for o in c.options)
    assert any(o.keep < 1.0 for c in cands for o in c.options)
    assert not [n for n in res.state.notes if "int8" in n]


def test_a_uniform_choice_the_front_proposes_is_still_uniform():
    """Uniform keep 0.5 proposed by the front (kinds uniform and front, or front alone)
    is a uniform row: it is never counted as a searched point beating the uniform
    choices, and a point it beats is not counted either."""
    from converters.optimize.report import _role, beats_uniform
    from converters.optimize.state import Record, SearchState

    state = SearchState("s")
    half = [["fp32", 0.5, 0.0]] * 3
    mix = [["fp32", 0.5, 0.0], ["fp32", 0.75, 0.0], ["fp32", 0.5, 0.0]]
    assert _role("a", Record(half, kinds=["uniform", "front"]), state, "b") == "uniform pruning"
    assert _role("a", Record(half, kinds=["front"]), state, "b") == "uniform pruning"
    assert _role("a", Record(mix, kinds=["front"]), state, "b") == "searched"
    rows = [{"role": "uniform pruning", "ms": 1.0, "accuracy": 0.99},
            {"role": "searched", "ms": 0.9, "accuracy": 0.98},
            {"role": "searched", "ms": 1.0, "accuracy": 0.995}]
    assert beats_uniform(rows) == [rows[2]]
