"""The per-unit latency table, measured on the device, and the prediction built on it.

Every entry comes from whole models timed on the device: the base (every unit
fp32, unpruned) and, per unit and option, the base with that one unit changed.
The difference is the unit's cost change *in context* (the same neighbours,
caches and thread pool as in the real model), which is what a per-layer model
measured alone gets wrong (measured on the digits net: isolated segments summed to
2x the whole model in fp32, with per-model overhead and int8 segments that ran on
other kernels alone).

Changes add up except at a cut between two units: in a probe every quantized unit
has float neighbours, so it carries a QUANTIZE of its input and a DEQUANTIZE of its
output; two int8 neighbours share the tensor in int8 and neither conversion
exists. One more probe per cut (both neighbours int8) measures the pair's saving
``kappa``; half of it is booked to the QUANTIZE and half to the DEQUANTIZE (the
same tensor converted each way). The prediction of a candidate is then

    base + sum(delta[u][option_u]) - sum over cuts of the conversions it avoids,

with an ``int8-mixed`` unit whose input is read by a float op too (a residual Add
kept float) still needing the DEQUANTIZE, and its QUANTIZE gone only for readers
that are int8.

**The online correction** (``Correction``). On the digits net the sum above held
within 10 % for 49 of 51 measured candidates; on the zoo's MobileNetV2 (16 units,
each a few per cent of the model) for 5 of 20 on TFLite and 0 of 114 on MNN. Two
causes, found by replaying the stored searches (probe latencies and measured
candidates): (1) correlated noise. Each batch's latencies are scaled by one reading
of the fp32 control; a control read 1 % fast moves every probe of that batch by 1 %
of the *whole model*, and a candidate summing 16 probes of one batch carries 16 times
that (the int8-keep-0.75 probes of the zoo all came out too fast together: uniform
int8 keep 0.75 predicted -32 %, keep 0.5 +22 %). Rectifying noisy pair savings
(``max(0, .)`` below) biases every int8 mix the same way (-10 %). (2) Real
interactions: pruned MNN units save more together than alone. Neither is visible
in single-unit probes, and more probes do not remove (1) at the same cost.

So every candidate measured with more than one unit changed (uniform choices,
finalists, repairs, local search) is also a measurement *of the table*: the
correction is a ridge regression of the measured latency on the table's own terms,

    measured = base + sum_g s_g * D_g + s_cut * D_cut + sum_(u,o) c[u][o],

``D_g`` the summed probe deltas of the candidate's options in class g (int8,
pruned, int8 and pruned, sparse), ``D_cut`` its summed pair savings, ``c[u][o]``
a per-unit-option offset; the scales shrink towards 1 and the offsets towards 0
(penalties ``RIDGE_SCALE`` and ``RIDGE_OFFSET``, relative to the base latency), so
with no measured combination it is the table above, a class whose probes were all
biased one way is rescaled after one combination shows it, and units that interact
get their own offsets once several combinations hold them. It stays additive per
unit, so it folds into a corrected ``LatencyTable`` (``corrected``) that the
knapsack, the repair and the local search use unchanged. The search refits it
after every measured batch and predicts the next batch with it: a prediction is
made (``Record.prior_ms``) before its candidate is measured and never sees its own
measurement. Replayed on the stored searches
(``bench/replay_latency.py``: each batch predicted from the ones before it), the
candidates predicted before measurement within 10 %: zoo TFLite 14 of 14 (table
alone 3), zoo MNN 112 of 112 (table alone 0), five digits searches 39 of 39 (38);
with the probes scaled by a windowed control (``phases.probe_latencies``) every
stored search of issue 18, 226 of 226.
A global factor alone: 12, 60 and 38; a factor per class without offsets: 12, 60
and 39 (docs/OPTIMIZE.md). Why not more probes (2-3 adjacent units, a second keep
level per unit): they carry the same batch noise, cost a built and timed model
each, and still miss the interactions of a 12-unit mix; the measured mixes the
search makes anyway cost nothing extra. The baselines (uniform choices) are
measured before any table exists, so they are the correction's first samples and
are never predicted before measurement (the report shows them against the table
alone, apart).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from converters.optimize.space import Candidate, Option, UnitSpace
from converters.optimize.units import Unit

Edges = Tuple[FrozenSet[str], bool]     # (dtypes its input is read in, output is int8)


def edges(unit: Unit, option: Option, mixed_float: List[str]) -> Edges:
    """How a unit with ``option`` meets its neighbours: the dtypes it reads its input
    cut in ({"float"}, {"int8"} or both) and whether it writes its output cut in int8."""
    if option.precision == "fp32":
        return frozenset({"float"}), False
    if option.precision == "int8":
        return frozenset({"int8"}), True
    floats = set(mixed_float)
    readers = unit.readers or unit.nodes[:1]
    needs = frozenset(("float" if r in floats else "int8") for r in readers)
    return needs, unit.writer not in floats


def saving(prev_out_int8: bool, needs: FrozenSet[str], q: float, dq: float) -> float:
    """Latency a cut saves against the probes' accounting (see the module docstring)."""
    if not prev_out_int8:
        return 0.0
    out = q if "int8" in needs else 0.0
    if "float" not in needs:
        out += dq
    return out


@dataclass
class LatencyTable:
    """The base latency, per unit the change each option makes, per cut the int8 pair's
    saving. All in ms, all measured on the device."""

    base_ms: float
    deltas: List[Dict[Option, float]] = field(default_factory=list)
    kappa: Dict[int, float] = field(default_factory=dict)   # cut k: between unit k and k+1

    def conversion_ms(self, cut: int) -> Tuple[float, float]:
        """(QUANTIZE, DEQUANTIZE) cost at ``cut``: half the measured pair saving each
        (0 when the pair was not measured, or its saving was lost in the noise)."""
        k = self.kappa.get(cut)
        half = max(0.0, -k / 2.0) if k is not None else 0.0
        return half, half

    def has(self, unit: int, option: Option) -> bool:
        return option.is_base or option in self.deltas[unit]

    def predict(self, cand: Candidate, units: List[Unit], space: UnitSpace) -> Optional[float]:
        """Predicted latency of ``cand`` (ms), or None if one of its options is unmeasured."""
        total = self.base_ms
        prev_out = False
        for u, o in zip(units, cand.options):
            if not self.has(u.index, o):
                return None
            total += 0.0 if o.is_base else self.deltas[u.index][o]
            needs, out = edges(u, o, space.mixed_float[u.index])
            if u.index > 0:
                q, dq = self.conversion_ms(u.index - 1)
                total -= saving(prev_out, needs, q, dq)
            prev_out = out
        return total

    def corrected(self, corr: "Correction") -> "LatencyTable":
        """This table with ``corr`` folded in: each delta scaled by its class's factor
        plus its offset, each pair saving scaled by the cut factor (the same predictions
        as ``corr.predict``, for the knapsack)."""
        deltas = [{o: corr.scales.get(option_class(o), 1.0) * d + corr.offsets.get((u, o), 0.0)
                   for o, d in row.items()} for u, row in enumerate(self.deltas)]
        cut = corr.scales.get(CUT, 1.0)
        return LatencyTable(self.base_ms, deltas, {k: cut * v for k, v in self.kappa.items()})

    def terms(self, cand: Candidate, units: List[Unit], space: UnitSpace
              ) -> Optional[Dict[object, float]]:
        """``cand``'s prediction split into the correction's terms (ms, or 1 for an
        offset): per option class its summed deltas, ``CUT`` its pair savings
        (negative), per (unit, option) changed a 1. None if an option is unmeasured."""
        out: Dict[object, float] = {}
        prev_out = False
        for u, o in zip(units, cand.options):
            if not self.has(u.index, o):
                return None
            if not o.is_base:
                g = option_class(o)
                out[g] = out.get(g, 0.0) + self.deltas[u.index][o]
                out[(u.index, o)] = 1.0
            needs, w = edges(u, o, space.mixed_float[u.index])
            if u.index > 0:
                q, dq = self.conversion_ms(u.index - 1)
                sv = saving(prev_out, needs, q, dq)
                if sv:
                    out[CUT] = out.get(CUT, 0.0) - sv
            prev_out = w
        return out

    def to_dict(self) -> Dict:
        return {"base_ms": self.base_ms,
                "deltas": [[[o.to_list(), d] for o, d in row.items()] for row in self.deltas],
                "kappa": {str(k): v for k, v in self.kappa.items()}}

    @classmethod
    def from_dict(cls, d: Dict) -> "LatencyTable":
        return cls(float(d["base_ms"]),
                   [{Option.from_list(o): float(v) for o, v in row} for row in d["deltas"]],
                   {int(k): float(v) for k, v in d["kappa"].items()})


#: the correction's term for the pair savings at cuts
CUT = "cut"
#: ridge penalties, relative to the base latency (replayed on the stored searches:
#: 0.01 to 0.1 give the same hit rates; see the module docstring)
RIDGE_SCALE = 0.01
RIDGE_OFFSET = 0.01


def option_class(o: Option) -> str:
    """The class whose probes share one correction factor: what the option changes."""
    if o.sparsity > 0.0:
        return "sparse"
    q = "int8" if o.quantized else ""
    p = "pruned" if o.keep < 1.0 else ""
    return " ".join(x for x in (q, p) if x) or "fp32"


@dataclass
class Correction:
    """Per option class a factor on the table's deltas (``CUT``: on its pair savings),
    per (unit, option) an offset in ms: fitted to measured multi-unit candidates."""

    scales: Dict[str, float] = field(default_factory=dict)
    offsets: Dict[Tuple[int, Option], float] = field(default_factory=dict)
    samples: int = 0

    def predict(self, table: LatencyTable, cand: Candidate, units: List[Unit],
                space: UnitSpace) -> Optional[float]:
        t = table.terms(cand, units, space)
        if t is None:
            return None
        total = table.base_ms
        for k, v in t.items():
            if isinstance(k, tuple):
                total += self.offsets.get(k, 0.0) * v
            else:
                total += self.scales.get(str(k), 1.0) * v
        return total

    def to_dict(self) -> Dict:
        return {"samples": self.samples, "scales": dict(self.scales),
                "offsets": [[u, o.to_list(), v] for (u, o), v in self.offsets.items()]}


def fit_correction(table: LatencyTable, samples: Sequence[Tuple[Candidate, float]],
                   units: List[Unit], space: UnitSpace, ridge_scale: float = RIDGE_SCALE,
                   ridge_offset: float = RIDGE_OFFSET) -> Correction:
    """The ``Correction`` fitted to ``samples`` ((candidate, measured ms)) by ridge
    regression in units of the base latency: scales towards 1, offsets towards 0. A
    negative cut factor (pairs that cost instead of saving, which the table's
    conversions cannot say) is fixed at 0 and the rest fitted again."""
    rows: List[Tuple[Dict[object, float], float]] = []
    for c, ms in samples:
        t = table.terms(c, units, space)
        if t is not None:
            rows.append((t, ms))
    keys = sorted({k for t, _ in rows for k in t}, key=repr)
    if not rows or not keys:
        return Correction()
    fitted = _ridge(rows, keys, table.base_ms, ridge_scale, ridge_offset)
    if fitted.get(CUT, 0.0) < 0.0:
        fitted = _ridge(rows, [k for k in keys if k != CUT], table.base_ms, ridge_scale,
                        ridge_offset)
        fitted[CUT] = 0.0
    scales = {str(k): v for k, v in fitted.items() if not isinstance(k, tuple)}
    offsets = {k: v * table.base_ms for k, v in fitted.items() if isinstance(k, tuple)}
    return Correction(scales, offsets, len(rows))


def _ridge(rows, keys, b0: float, ridge_scale: float, ridge_offset: float) -> Dict:
    """min ||X w - y||^2 + sum lam (w - prior)^2 with y and the class columns in units
    of the base latency (so the penalties do not depend on the model's speed)."""
    is_off = np.array([isinstance(k, tuple) for k in keys], dtype=bool)
    x = np.array([[t.get(k, 0.0) for k in keys] for t, _ in rows], dtype=float)
    x[:, ~is_off] /= b0
    y = np.array([(ms - b0) / b0 for _, ms in rows])
    lam = np.where(is_off, ridge_offset, ridge_scale)
    prior = np.where(is_off, 0.0, 1.0)
    coef = np.linalg.solve(x.T @ x + np.diag(lam), x.T @ y + lam * prior)
    return {k: float(v) for k, v in zip(keys, coef)}
