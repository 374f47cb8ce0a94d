"""Range estimators for post-training calibration: min/max, percentile, entropy (KL).

Hand-written rather than taken from ``onnxruntime.quantization.calibrate``
because that module prints to stdout, writes an augmented model into the
working directory, keeps every batch's intermediates in memory, selects
tensors by op type only (we need "exactly the tensors a partial table lacks"),
and its entropy search is a per-bin Python loop whose defaults (128 bins, 128
quantized bins) leave a single candidate, i.e. plain min/max. The algorithms are
the standard ones: the KL search is the TensorRT/MXNet method (S7310, GTC 2017).

Two passes over the data: the first finds each tensor's min/max, the second
fills fixed-range histograms (exact, and simpler than rebinning on the fly).
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple, Type

import numpy as np

NUM_BINS = 2048
NUM_QUANT_BINS = 128
#: values at or beyond this magnitude are masks, not data: attention masks fill with
#: torch.finfo(float32).min (-3.4e38); in a range they would make the scale 1e36 and
#: every real value 0. Left out, they saturate to the int8 limit, which is what a mask
#: means (Softmax then gives them ~0 weight).
SENTINEL = 1e30

_ESTIMATORS: Dict[str, Type["RangeEstimator"]] = {}


def register(name: str) -> Callable[[Type["RangeEstimator"]], Type["RangeEstimator"]]:
    def deco(cls):
        if name in _ESTIMATORS:
            raise ValueError(f"range estimator {name!r} registered twice")
        cls.name = name
        _ESTIMATORS[name] = cls
        return cls
    return deco


def methods() -> Tuple[str, ...]:
    return tuple(_ESTIMATORS)


def make(name: str, **kwargs) -> "RangeEstimator":
    if name not in _ESTIMATORS:
        from edgert.errors import UnsupportedOptionError
        raise UnsupportedOptionError(f"calibration method {name!r}; methods: {', '.join(methods())}")
    return _ESTIMATORS[name](**kwargs)


def data_values(x: np.ndarray):
    """A mask of ``x``'s data values (finite, below ``SENTINEL``), or None when all are."""
    if not np.issubdtype(x.dtype, np.floating):
        return None
    keep = np.isfinite(x) & (np.abs(x) < SENTINEL)
    return None if keep.all() else keep


class RangeEstimator:
    """Collects statistics per tensor and turns them into a float range."""

    name = ""
    two_pass = False

    def __init__(self) -> None:
        self.lo: Dict[str, float] = {}
        self.hi: Dict[str, float] = {}
        self.masked: Dict[str, int] = {}      # tensor -> values left out as masks

    def observe(self, tensor: str, x: np.ndarray) -> None:
        """First pass: min/max of the data values (no inf/NaN, no mask fill values)."""
        x = np.asarray(x)
        if x.size == 0:
            return
        keep = data_values(x)
        finite = x if keep is None else x[keep]
        if keep is not None and np.issubdtype(x.dtype, np.floating):
            masks = int(np.count_nonzero(np.isfinite(x) & ~keep))
            if masks:
                self.masked[tensor] = self.masked.get(tensor, 0) + masks
        if finite.size == 0:
            return
        lo, hi = float(finite.min()), float(finite.max())
        self.lo[tensor] = min(lo, self.lo.get(tensor, lo))
        self.hi[tensor] = max(hi, self.hi.get(tensor, hi))

    def observe_second(self, tensor: str, x: np.ndarray) -> None:
        """Second pass (two-pass estimators only)."""

    def range(self, tensor: str) -> Tuple[float, float]:
        return self.lo[tensor], self.hi[tensor]

    def description(self) -> str:
        return self.name


@register("minmax")
class MinMax(RangeEstimator):
    """The whole observed range: no value clips, small values lose resolution."""


class _Histogram(RangeEstimator):
    two_pass = True

    def __init__(self, bins: int = NUM_BINS) -> None:
        super().__init__()
        self.bins = bins
        self.hist: Dict[str, np.ndarray] = {}

    def _edges(self, tensor: str) -> Tuple[float, float]:
        raise NotImplementedError

    def _values(self, x: np.ndarray) -> np.ndarray:
        return x

    def observe_second(self, tensor: str, x: np.ndarray) -> None:
        if tensor not in self.lo:
            return
        lo, hi = self._edges(tensor)
        if hi <= lo:
            return
        x = np.asarray(x, dtype=np.float32).ravel()
        keep = data_values(x)
        x = self._values(x if keep is None else x[keep])
        h, _ = np.histogram(x, bins=self.bins, range=(lo, hi))
        self.hist[tensor] = self.hist.get(tensor, 0) + h


@register("percentile")
class Percentile(_Histogram):
    """Clip the extreme ``(100 - percentile)`` percent of values, half on each side."""

    def __init__(self, percentile: float = 99.99, bins: int = NUM_BINS) -> None:
        super().__init__(bins)
        if not 0.0 < percentile <= 100.0:
            from edgert.errors import UnsupportedOptionError
            raise UnsupportedOptionError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile = float(percentile)

    def _edges(self, tensor: str) -> Tuple[float, float]:
        return self.lo[tensor], self.hi[tensor]

    def range(self, tensor: str) -> Tuple[float, float]:
        lo, hi = self.lo[tensor], self.hi[tensor]
        h = self.hist.get(tensor)
        if h is None or h.sum() == 0:
            return lo, hi
        cdf = np.cumsum(h) / h.sum()
        cut = (100.0 - self.percentile) / 200.0
        edges = np.linspace(lo, hi, self.bins + 1)
        i_lo = int(np.searchsorted(cdf, cut, side="right"))
        i_hi = int(np.searchsorted(cdf, 1.0 - cut, side="left"))
        return max(lo, float(edges[i_lo])), min(hi, float(edges[min(i_hi + 1, self.bins)]))

    def description(self) -> str:
        return f"percentile({self.percentile:g})"


@register("entropy")
class Entropy(_Histogram):
    """The |x| threshold whose 128-level quantization loses least information (KL)."""

    def __init__(self, bins: int = NUM_BINS, quant_bins: int = NUM_QUANT_BINS,
                 candidates: int = 160) -> None:
        super().__init__(bins)
        self.quant_bins = quant_bins
        self.candidates = candidates

    def _edges(self, tensor: str) -> Tuple[float, float]:
        return 0.0, max(abs(self.lo[tensor]), abs(self.hi[tensor]))

    def _values(self, x: np.ndarray) -> np.ndarray:
        return np.abs(x)

    def range(self, tensor: str) -> Tuple[float, float]:
        lo, hi = self.lo[tensor], self.hi[tensor]
        h = self.hist.get(tensor)
        if h is None or h.sum() == 0:
            return lo, hi
        amax = max(abs(lo), abs(hi))
        t = kl_threshold(h, amax, self.quant_bins, self.candidates)
        return max(lo, -t), min(hi, t)


def kl_threshold(hist: np.ndarray, amax: float, quant_bins: int = NUM_QUANT_BINS,
                 candidates: int = 160) -> float:
    """Threshold on |x| (histogram over [0, amax]) minimizing KL(P || Q)."""
    hist = np.asarray(hist, dtype=np.float64)
    nbins = hist.size
    if nbins <= quant_bins:
        return amax
    stops = np.unique(np.linspace(quant_bins, nbins, candidates).astype(int))
    best, best_kl = nbins, np.inf
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # tail[i] = hist[i:].sum()
    for i in stops:
        kl = _kl_for_stop(hist, tail, int(i), quant_bins)
        if kl < best_kl:
            best, best_kl = int(i), kl
    return float(amax * best / nbins)


def _kl_for_stop(hist: np.ndarray, tail: np.ndarray, i: int, quant_bins: int) -> float:
    sliced = hist[:i]
    p = sliced.copy()
    p[-1] += tail[i]                       # outliers clip into the last bin
    group = (np.arange(i) * quant_bins) // i  # which quantized bin each fine bin falls in
    sums = np.bincount(group, weights=sliced, minlength=quant_bins)
    nonzero = sliced != 0
    counts = np.bincount(group, weights=nonzero.astype(np.float64), minlength=quant_bins)
    q = np.where(nonzero, sums[group] / np.maximum(counts[group], 1), 0.0)
    if p.sum() == 0 or q.sum() == 0:
        return np.inf
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    q_m = np.where(q[mask] > 0, q[mask], 1e-10)
    return float(np.sum(p[mask] * np.log(p[mask] / q_m)))
