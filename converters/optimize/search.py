"""The search: baselines, per-unit probes, the knapsack front, evaluation, repair.

Phases (each candidate is built, evaluated on the host by edgert's runtime, and
timed on the device by the meter; everything is kept in the state by candidate key,
so a resumed search skips what it has):

1. **baselines**: the fp32 model, uniform int8 (and int8-mixed), uniform channel
   pruning at each keep ratio (fp32 and int8), uniform block sparsity where the
   target has sparse kernels. If uniform int8 is not faster than fp32 on the device,
   int8 leaves the search (said in the notes: MNN on x86).
2. **probes**: per unit and option, the base with that one unit changed, and per
   cut the pair of int8 neighbours: the latency table (``latency.py``) and each
   option's damage and accuracy drop (its sensitivity).
3. **front**: the knapsack (``knapsack.py``) gives the least-damage candidate at every
   predicted latency; the point under the budget and a spread of others are built,
   evaluated and measured (the finalists).
4. **repair**: when the chosen point misses the drop limit (damage is not exactly
   additive) or its measured latency the budget, the knapsack is solved again
   without the suspect choice, or for a budget tightened by the prediction's error.
5. **local search** (``local.py``): while the goal is still missed and time is left,
   one- and two-unit changes of the best measured points, ranked by sensitivities
   fitted to every evaluated candidate.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from converters.optimize.goal import Goal
from converters.optimize.knapsack import FrontPoint
from converters.optimize.latency import Correction, LatencyTable, fit_correction
from converters.optimize.meter import MeterError, measure_all
from converters.optimize.space import BASE, Candidate, Option
from converters.optimize.state import Record, SearchState
from edgert.errors import EdgertError

Event = Dict[str, Any]


class SearchStopped(EdgertError):
    """The device dropped during the search; the state is saved and can be resumed."""


@dataclass
class SearchOptions:
    statistic: str = "min"
    search_minutes: float = 15.0
    front_points: int = 6
    repair_rounds: int = 3
    local_rounds: int = 30
    local_batch: int = 6
    local_patience: int = 3
    batch: int = 12


class Search:
    """One search over a prepared problem (see the module docstring)."""

    def __init__(self, problem, builder, evaluator, meter, goal: Goal, log, state: SearchState,
                 options: SearchOptions, on_event: Optional[Callable[[Event], None]] = None
                 ) -> None:
        self.p, self.builder, self.evaluator, self.meter = problem, builder, evaluator, meter
        self.goal, self.log, self.state, self.opts = goal, log, state, options
        self.on_event = on_event
        self.n = len(problem.units)
        self.base = Candidate.uniform(self.n, BASE)
        self.started = time.monotonic() - state.elapsed_s
        self.deadline = self.started + options.search_minutes * 60.0
        self._base_outputs = None
        self.table: Optional[LatencyTable] = None        # the probes' table, corrected
        self.raw_table: Optional[LatencyTable] = None    # the probes' table alone
        self.correction = Correction()
        self.damages: List[Dict[Option, float]] = []
        self.drops: List[Dict[Option, float]] = []
        self.front: List[FrontPoint] = []
        self.allowed: List[List[Option]] = []

    # -- bookkeeping ---------------------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> None:
        if self.on_event is None:
            return
        done = [r for r in self.state.results.values() if r.evaluation is not None]
        best = self.best()
        event = dict(kind=kind, elapsed_s=time.monotonic() - self.started,
                     left_s=max(0.0, self.deadline - time.monotonic()),
                     tried=len(done), measured=sum(1 for r in self.state.results.values()
                                                   if _ms(r) is not None),
                     best=None if best is None else {"label": best.label, "ms": _ms(best),
                                                     "accuracy": _acc(best)}, **fields)
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a display problem must not stop the search
            pass

    def save(self, status: Optional[str] = None) -> None:
        if status:
            self.state.status = status
        self.state.elapsed_s = time.monotonic() - self.started
        self.log.save(self.state.to_dict())

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def per_candidate_s(self) -> float:
        """Wall time per measured candidate so far (build, evaluation, measurement)."""
        done = sum(1 for r in self.state.results.values() if r.measurement is not None)
        return max(1e-3, time.monotonic() - self.started) / max(1, done)

    def record(self, cand: Candidate, kind: str) -> Record:
        rec = self.state.results.get(cand.key)
        if rec is None:
            rec = Record(candidate=cand.to_list(), label=cand.label())
            self.state.results[cand.key] = rec
        if kind not in rec.kinds:
            rec.kinds.append(kind)
        return rec

    def base_record(self) -> Record:
        return self.state.results[self.base.key]

    # -- build, evaluate, measure ------------------------------------------------------------
    def run_batch(self, cands: List[Candidate], kind: str, phase: str) -> List[Record]:
        """Build, evaluate and measure ``cands`` (what the state lacks), saving as it goes."""
        recs = [self.record(c, kind) for c in cands]
        for i in range(0, len(recs), self.opts.batch):
            chunk = recs[i:i + self.opts.batch]
            for rec in chunk:
                self.build_and_evaluate(rec)
            self.emit("batch_built", phase=phase, done=i + len(chunk), total=len(recs))
            todo = [r for r in chunk if r.built and r.measurement is None]
            self.predict_before(todo)
            self.measure(todo, phase)
            self.refit()
            self.save()
            self.emit("batch_measured", phase=phase, done=i + len(chunk), total=len(recs))
        return recs

    # -- latency prediction ----------------------------------------------------------------
    def predict_before(self, recs: List[Record]) -> None:
        """Each scored record's prediction, from the table as corrected by what was
        measured before this batch (``Record.prior_ms``)."""
        if self.table is None:
            return
        for rec in recs:
            if is_scored(rec) and rec.candidate != self.base.to_list():
                rec.prior_ms = self.table.predict(Candidate.from_list(rec.candidate),
                                                  self.p.units, self.p.space)

    def refit(self) -> None:
        """The correction fitted again to every multi-unit candidate measured so far
        (``latency.fit_correction``), and the table the search predicts with."""
        if self.raw_table is None:
            return
        l0 = _ms(self.base_record())
        if l0 is None:
            return
        samples = []
        for k, r in self.state.results.items():
            got = corrected_ms(r, l0)
            if k != self.base.key and is_scored(r) and got is not None:
                samples.append((Candidate.from_list(r.candidate), got))
        self.correction = fit_correction(self.raw_table, samples, self.p.units, self.p.space)
        self.table = self.raw_table.corrected(self.correction)
        self.state.table = dict(self.raw_table.to_dict(), correction=self.correction.to_dict())

    def build_and_evaluate(self, rec: Record) -> None:
        from converters.optimize.evaluate import damage

        if rec.build_error is not None or (rec.built and rec.evaluation):
            return
        cand = Candidate.from_list(rec.candidate)
        try:
            built = self.builder.build(cand)
        except EdgertError as exc:
            rec.build_error = str(exc)
            self.state.notes.append(f"candidate {rec.label} could not be built: {exc}")
            return
        rec.built = built.to_dict()
        ev = self.evaluator(built.path)
        if cand.key == self.base.key:
            self._bind_base(ev)
            if math.isnan(ev.accuracy):      # agreement: scored once it has its labels
                ev = self.evaluator(built.path)
        d = ev.to_dict()
        d["damage"] = damage(ev.outputs, self.base_outputs())
        rec.evaluation = d

    def _bind_base(self, ev) -> None:
        self._base_outputs = ev.outputs
        if hasattr(self.evaluator, "bind_reference"):
            self.evaluator.bind_reference(ev)

    def base_outputs(self):
        if self._base_outputs is None:
            rec = self.base_record()
            self._bind_base(self.evaluator(rec.built["path"]))
        return self._base_outputs

    def measure(self, recs: List[Record], phase: str) -> None:
        """Time ``recs`` on the device, with the fp32 file timed again in the same batch
        as a control (``control_ms``): a device whose speed drifts during the search
        (other work, heat) scales every file of a batch alike, so latency relative to the
        control is what the table is built from (``corrected_ms``)."""
        if not recs:
            return
        by_path = {r.built["path"]: r for r in recs}
        base = self.state.results.get(self.base.key)
        control = base.built["path"] if base is not None and base.built else None
        paths = list(by_path) + ([control] if control and control not in by_path else [])
        try:
            got = measure_all(self.meter, paths, f"{self.state.search_id} {phase}",
                              self.opts.statistic)
        except MeterError as exc:
            self._store(by_path, exc.done)
            self.save("stopped")
            raise SearchStopped(f"{exc} -- the search is saved as {self.state.search_id}; "
                                f"resume it when the device is back") from None
        self._store(by_path, got)
        ctl = got.get(control) if control else None
        batch = 1 + max((int((r.measurement or {}).get("batch") or 0)
                         for r in self.state.results.values()), default=0)
        for r in by_path.values():
            if r.measurement is not None and r.measurement.get("ok"):
                r.measurement["batch"] = batch
                if ctl is not None and ctl.ok and ctl.latency_ms:
                    r.measurement["control_ms"] = ctl.latency_ms

    def _store(self, by_path: Dict[str, Record], got) -> None:
        for path, m in got.items():
            rec = by_path.get(path)
            if rec is None:
                continue
            rec.measurement = m.to_dict()
            run = m.where.get("run_id")
            if run and run not in self.state.runs:
                self.state.runs.append(run)

    def best(self) -> Optional[Record]:
        """The best measured record for the goal so far (see ``choose``)."""
        return choose(self.state, self.goal, self.budget(), self.base.key)[0]

    def budget(self) -> Optional[float]:
        rec = self.state.results.get(self.base.key)
        base_ms = _ms(rec) if rec is not None else None
        return None if base_ms is None else self.goal.budget_ms(base_ms)


def is_scored(rec: Record) -> bool:
    """A multi-unit candidate the table was not built from (not a probe or a pair)."""
    return bool({"uniform", "front", "repair", "local"} & set(rec.kinds)) and not (
        {"probe", "pair"} & set(rec.kinds))


def _ms(rec: Record) -> Optional[float]:
    m = rec.measurement
    return m.get("latency_ms") if m and m.get("ok") else None


def corrected_ms(rec: Record, base_ms: float) -> Optional[float]:
    """``rec``'s latency relative to the fp32 control of its batch, in the fp32 model's
    first measurement's ms (its raw latency when the batch had no control)."""
    ms = _ms(rec)
    ctl = (rec.measurement or {}).get("control_ms")
    return ms if ms is None or not ctl else ms * base_ms / ctl


def _acc(rec: Record) -> Optional[float]:
    return rec.evaluation.get("accuracy") if rec.evaluation else None


def choose(state: SearchState, goal: Goal, budget: Optional[float], base_key: str
           ) -> Tuple[Optional[Record], bool]:
    """(the record the goal picks among the measured ones, whether it meets the goal).

    Under a budget: the most accurate record that measures within it and keeps the
    drop limit (ties: the faster). A drop limit alone: the fastest that keeps it.
    Nothing meets the goal: the closest, i.e. the fastest record that keeps the drop
    limit (or the fastest at all), and False.
    """
    recs = [r for r in state.results.values() if _ms(r) is not None and _acc(r) is not None]
    base = state.results.get(base_key)
    if not recs or base is None or _acc(base) is None:
        return None, False
    keeps = [r for r in recs if goal.drop_ok(_acc(base), _acc(r))]
    if budget is not None:
        fits = [r for r in keeps if _ms(r) <= budget]
        if fits:
            return max(fits, key=lambda r: (_acc(r), -_ms(r))), True
    elif keeps:
        return min(keeps, key=lambda r: (_ms(r), -_acc(r))), True
    pool = keeps or recs
    return min(pool, key=lambda r: (_ms(r), -_acc(r))), False
