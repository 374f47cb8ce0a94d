"""Comparing two runs: is a cell slower than before, and by how much?

The test: a percentile bootstrap confidence interval of the ratio of medians,
new / base (each run's stored latencies resampled with replacement, 2000
times, seeded, so a report is reproducible). A cell is a regression only when
the whole interval lies above ``1 + min_change`` (we are 95 % sure it is at
least that much slower), an improvement when it lies below
``1 / (1 + min_change)``; anything else is "no clear change".

Why this and not Mann-Whitney U: the question a regression report answers is
"how much slower", and the interval names that size with its uncertainty
("1.18x, 95 % CI 1.12-1.25"); a rank test gives a p-value for "the
distributions differ", which with a few hundred samples is true of shifts too
small to matter, and says nothing of the size. The median, not the mean: a few
latencies disturbed by the OS pull a mean, not a median. Why a minimum change
(default 5 %): samples within one run share that run's thermal and background
state, so the interval measures within-run noise only; run-to-run drift of a
few percent is normal on phones and is not a regression.

Cells without per-run latencies (the native tools print summaries) cannot be
tested: their ratio of means is shown, never flagged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from device_farm.report.cells import Cell

N_BOOT = 2000
CONFIDENCE = 0.95
MIN_CHANGE = 0.05
MIN_SAMPLES = 5
SEED = 20240607


def median_ratio_ci(base: Sequence[float], new: Sequence[float], confidence: float = CONFIDENCE,
                    n_boot: int = N_BOOT, seed: int = SEED) -> Tuple[float, float, float]:
    """(median(new) / median(base), lower, upper) with a percentile bootstrap interval."""
    a, b = np.asarray(base, dtype=np.float64), np.asarray(new, dtype=np.float64)
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, len(a), size=(n_boot, len(a)))], axis=1)
    med_b = np.median(b[rng.integers(0, len(b), size=(n_boot, len(b)))], axis=1)
    ratios = med_b / med_a
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(np.median(b) / np.median(a)), float(lo), float(hi)


@dataclass
class Change:
    """One cell of the new run against the same place in the base run."""

    model: str
    variant: str
    device: str
    base_id: str
    new_id: str
    base_ms: Optional[float]
    new_ms: Optional[float]
    ratio: Optional[float]          # new / base: > 1 is slower
    lo: Optional[float] = None
    hi: Optional[float] = None
    n_base: int = 0
    n_new: int = 0
    verdict: str = "no clear change"   # regression, improvement, no clear change, not testable
    note: str = ""
    same_file: bool = True

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    def size(self) -> str:
        """The change in words: "18.2 % slower (95 % CI 12.0-25.1 %)"."""
        if self.ratio is None:
            return "-"
        if self.lo is None or self.hi is None:
            return f"{_pct(self.ratio)} (means; no interval)"
        return (f"{_pct(self.ratio)} (95 % CI {_signed(self.lo)} to {_signed(self.hi)})")


def _signed(r: float) -> str:
    return f"{(r - 1) * 100:+.1f} %"


def _pct(r: float) -> str:
    d = (r - 1) * 100
    return f"{abs(d):.1f} % {'slower' if d > 0 else 'faster'}" if abs(d) >= 0.05 else "same"


def compare(base: Sequence[Cell], new: Sequence[Cell], min_change: float = MIN_CHANGE,
            confidence: float = CONFIDENCE) -> List[Change]:
    """Every place (model, variant, device) in both runs, with its verdict."""
    if min_change < 0:
        raise ValueError("min_change must be >= 0")
    by_place = {(c.model, c.variant, c.device): c for c in base}
    out: List[Change] = []
    for c in new:
        b = by_place.get((c.model, c.variant, c.device))
        if b is None:
            continue
        change = Change(c.model, c.variant, c.device, b.id, c.id, b.value_ms, c.value_ms,
                        None, n_base=len(b.latencies), n_new=len(c.latencies),
                        same_file=b.sha256 == c.sha256)
        if b.status != "ok" or c.status != "ok" or not b.value_ms or c.value_ms is None:
            change.verdict, change.note = "not testable", "a run has no result here"
        elif min(len(b.latencies), len(c.latencies)) < MIN_SAMPLES:
            change.ratio = c.value_ms / b.value_ms
            change.verdict = "not testable"
            change.note = (f"fewer than {MIN_SAMPLES} stored latencies (a native tool prints "
                           f"only its summary): ratio of {c.stat or 'value'}s, not tested")
        else:
            change.ratio, change.lo, change.hi = median_ratio_ci(b.latencies, c.latencies,
                                                                 confidence)
            if change.lo > 1 + min_change:
                change.verdict = "regression"
            elif change.hi < 1 / (1 + min_change):
                change.verdict = "improvement"
        if not change.same_file:
            change.note = (change.note + "; " if change.note else "") + "the file changed"
        out.append(change)
    return out
