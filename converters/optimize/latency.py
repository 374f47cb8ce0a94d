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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple

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

    def to_dict(self) -> Dict:
        return {"base_ms": self.base_ms,
                "deltas": [[[o.to_list(), d] for o, d in row.items()] for row in self.deltas],
                "kappa": {str(k): v for k, v in self.kappa.items()}}

    @classmethod
    def from_dict(cls, d: Dict) -> "LatencyTable":
        return cls(float(d["base_ms"]),
                   [{Option.from_list(o): float(v) for o, v in row} for row in d["deltas"]],
                   {int(k): float(v) for k, v in d["kappa"].items()})
