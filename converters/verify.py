"""Numeric verification: does the converted model compute what the source does?

Both sides run on the same input sets (see ``converters/flow/reference.py``: several
seeded sets, the user's data when given, held-out calibration samples for int8) and
every output of every set is judged by its kind:

- **integer and bool outputs** (indices, masks, shapes) compare element by element,
  exactly: ``min_index_agreement`` is the fraction that must be equal (1 at fp32 and
  fp16; 0.5 at the quantized precisions, whose float values feeding an ArgMax or
  TopK reorder near-ties, int8 even makes exact ties: half catches a wrong axis,
  order or offset, whose agreement is about one in the number of classes);
- **float outputs** pass four gates:

  1. the bound ``max |ref - res| <= atol + rtol * max |ref|`` (per output and input
     set; ``rtol`` grows with the output's depth, below), so a scaled output, a
     shifted one, or a constant vector with wrong values fails (cosine is blind to
     all three); an output stored as float16 on either side (``return y.half()``)
     adds an fp16 ulp (2 x 2^-11 relative): an engine returning the float32 value
     unrounded differs from the source's rounded one by that much;
  2. ``cosine >= min_cosine`` (flattened), unless the whole error is below ``atol``:
     then the output is all near zero and its direction is rounding noise (PP-OCR's
     DB-net: an exact conversion, max error 1.1e-7, cosine 0.99985); likewise at int8
     an output whose reference lies entirely within ``NOISE_FLOOR_STEPS`` (4) steps of
     its table scale is judged by max abs error against that, not by cosine and SNR
     (a scalar 0.0007 that int8 writes as 0);
  3. ``SNR >= min_snr_db`` (10 log10(sum ref^2 / sum (ref - res)^2)), gated where
     there is no bound (the quantized precisions): for unbiased noise cosine and SNR
     say the same (1 - cos ~ rho^2 / 2, SNR = -10 log10 rho^2 with rho the noise to
     signal ratio), but a scale error k leaves cosine at 1 and makes rho = |k - 1|;
     the SNR gate is derived from the cosine gate, -10 log10(2 (1 - min_cosine)), so
     it fails a scale error beyond sqrt(2 (1 - min_cosine)) (20 % at int8's 0.98);
  4. top-1 agreement on **class scores**: outputs of rank 2, [batch, classes] with at
     least 2 classes (the flow narrows them to rank-2 outputs made by Softmax,
     LogSoftmax, Gemm or MatMul(+Add): a classifier's head; detection heads such as
     [1, 84, 8400] and segmentation maps, rank 3 and 4, never are). The argmax must
     agree on every row whose reference leads its runner-up by more than twice the
     noise the precision admits (the bound at fp32/fp16; at the quantized
     precisions the rms error the cosine gate admits, sqrt(2 (1 - min_cosine)) x
     rms(ref)); rows inside that margin are ties within noise and not judged. When
     no row is outside it (flat logits: random inputs, a random-weight model, or an
     int8 error as large as every lead) and the argmax differs somewhere, the output
     is *unjudged* (``OutputCheck.top1_unjudged``): it does not fail on noise, but
     its verdict says so instead of "ok" (top-1 0.00 never reads "ok"), and the CLI
     asks for real inputs.

NaN and inf must sit where the source has them.

Where the tolerances come from
------------------------------
fp32. u = 2^-24 is float32's unit roundoff. A correctly rounded elementwise op adds
at most u |y|; a K-term dot product or reduction summed in another order differs by
about sqrt(K) u of the magnitudes it adds (Higham's gamma_K bounds it by K u; the
random-order estimate is sqrt(K)); library kernels for exp, tanh, sigmoid or erf are
good to a few ulp. So each op may move an output by some units of roundoff of the
largest magnitude it handles, 16 covering reductions of up to 256 terms at random
order, and the errors of the D ops on the longest path from the inputs to an output
add at most linearly: ``rtol = 16 u max(D, 8)`` (8: a floor for one-op graphs whose
kernels differ by a few ulp). ``atol = 16 u = 2^-20``: saturating functions
(sigmoid, tanh, softmax, erf) are often computed as 0.5 + 0.5 tanh(x / 2) or 1 - ...,
whose absolute error is some ulp of 1, not of a tiny result. Measured on the zoo
(docs/CONVERTERS.md): at most 1.2 u per op (EfficientNet-B0, 1.45e-5), a margin of
13; MNN's GELU, which is the tanh approximation, gives 9.5e-5 on one op and fails.
For D <= 500, rtol <= 4.8e-4: a 1 % scale error and a shift of 1e-3 max|ref| fail.
MNN runs without its Winograd convolutions and in fp32 for the check: Winograd
F(6x6, 3x3) transforms amplify rounding (6e-4 relative on one 3x3 conv measured, 1e4
u), a speed choice of the runtime, not a property of the file.

fp16 (weights stored in fp16, computed in fp32). Each weight carries a relative error
up to u16 = 2^-11. A dot product's error then has rms u16 / sqrt(3) x kappa |y|
(kappa, the ratio of sqrt(sum (w_i x_i)^2) to |y|, is about 1 to 3 in conv nets); the
D layers add in quadrature (sqrt(D)) and the largest of an output's elements sits
near 4.5 sigma: ``rtol = 8 u16 sqrt(D) + rtol_fp32``, ``atol`` as fp32. Zoo: worst
0.0215 of max|ref| (MobileNetV2 with random depthwise weights, D = 100 in its
TorchScript export; bound 0.039).

int8, int8/int4 weights. The error is quantization noise whose size depends on the
data (the calibration) more than on the graph, so the gates are relative: cosine
(``THRESHOLDS``), the SNR derived from it, top-1; no bound.

int8 against its own simulation (tests). Two int8 implementations of one table
(XNNPACK's kernels and LiteRT's reference ones, MNN's, with VNNI or without, x86 or
ARM) may round each requantized tensor one step of its scale apart (fixed-point or
float multipliers, ties to even or away from zero). With calibrated ranges a layer
hands such a difference on at about one step of its own output, so two
implementations differ at an output by about one output step per op on its longest
path: ``int8_lsb_bound(depth) = 2 depth`` steps, a factor of two for layers whose
output range is narrower than their input's (zoo, measured: at most 1.4 steps per op,
MNN on the dynamic-batch CNN; XNNPACK against the reference kernels 0.2 - 0.6).

``assert_close`` is the test helper: shape and dtype first, then the element-wise
tolerance of ``TOLERANCES`` and the cosine gate of ``THRESHOLDS``.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgert.errors import InputError
from edgert.tensors import DYNAMIC_DIM  # one figure for the runtime and the converters
from edgert.limits import MEMORY_ENV, fmt_bytes, tensor_budget
from edgert.tensors import nbytes


U32 = 2.0 ** -24          # float32 unit roundoff
U16 = 2.0 ** -11          # float16 unit roundoff
ULPS_PER_OP = 16          # units of roundoff one op may move an output by (docstring)
MIN_DEPTH = 8             # the depth floor of the fp32 bound
FLOAT_ATOL = ULPS_PER_OP * U32   # 2^-20: some ulp of 1, the range of saturating functions
FLOAT_PRECISIONS = ("fp32", "fp16")
INT8_LSB_PER_OP = 2       # output steps two int8 implementations may differ by, per op


#: an int8 output whose reference lies within this many steps of zero everywhere is judged
#: by max abs error against it (its direction is quantization noise): int8_lsb_bound(2),
#: its own rounding and one layer's accumulated error
NOISE_FLOOR_STEPS = 4.0


def int8_lsb_bound(depth: int) -> float:
    """Output quantization steps two int8 implementations of one table may differ by at
    an output ``depth`` ops deep (docstring: one step per requantizing op, times two)."""
    return float(INT8_LSB_PER_OP * max(int(depth), 1))


@dataclass(frozen=True)
class Thresholds:
    """Pass criteria for one precision. ``None`` means "reported, not enforced".

    ``rtol``/``atol``: the bound max|ref - res| <= atol + rtol * max|ref| (float
    outputs); ``min_top1``: the fraction of class-score rows outside the noise margin
    whose argmax must agree; ``min_index_agreement``: the fraction of an integer
    output's elements that must be equal.
    """

    min_cosine: float
    rtol: Optional[float] = None
    atol: float = 0.0
    min_snr_db: Optional[float] = None
    max_rel: Optional[float] = None
    max_abs: Optional[float] = None
    min_top1: Optional[float] = 1.0
    min_index_agreement: float = 1.0


# The depth-independent part of each precision's gates; ``thresholds_for`` adds the
# bound (fp32, fp16) for an output's depth and the SNR gate derived from the cosine.
THRESHOLDS: Dict[str, Thresholds] = {
    "fp32": Thresholds(min_cosine=0.99999, atol=FLOAT_ATOL),
    "fp16": Thresholds(min_cosine=0.999, atol=FLOAT_ATOL),
    "int8_weights": Thresholds(min_cosine=0.99, min_index_agreement=0.5),
    "int4_weights": Thresholds(min_cosine=0.95, min_index_agreement=0.5),
    "int8": Thresholds(min_cosine=0.98, min_index_agreement=0.5),
}

# Element-wise tolerances of ``assert_close``: |ref - res| <= atol * max|ref| + rtol * |ref|.
TOLERANCES: Dict[str, Dict[str, float]] = {
    "fp32": {"rtol": 1e-4, "atol": 1e-5},
    "fp16": {"rtol": 1e-2, "atol": 2e-3},
    "int8_weights": {"rtol": 5e-2, "atol": 2e-2},
    "int4_weights": {"rtol": 0.2, "atol": 0.1},
    "int8": {"rtol": 0.0, "atol": 1 / 127},  # about one quantization step of the output range
}


def fp32_rtol(depth: int) -> float:
    """16 units of float32 roundoff per op on the longest path (at least 8 ops)."""
    return ULPS_PER_OP * U32 * max(int(depth), MIN_DEPTH)


def fp16_rtol(depth: int) -> float:
    """fp16 weights: 8 u16 sqrt(depth) (rounding noise adding in quadrature) + fp32's."""
    return 8 * U16 * math.sqrt(max(int(depth), 1)) + fp32_rtol(depth)


_RTOL = {"fp32": fp32_rtol, "fp16": fp16_rtol}


def snr_for_cosine(min_cosine: float) -> float:
    """The SNR (dB) unbiased noise has at cosine ``min_cosine``: -10 log10(2 (1 - c))."""
    gap = 2.0 * (1.0 - float(min_cosine))
    return math.inf if gap <= 0 else -10.0 * math.log10(gap)


def thresholds_for(precision: str, overrides: Optional[Mapping[str, float]] = None,
                   depth: int = 1) -> Thresholds:
    """The gates of ``precision`` for an output ``depth`` ops deep, with ``overrides``."""
    if precision not in THRESHOLDS:
        raise InputError(f"no verification thresholds for precision {precision!r}; "
                         f"known: {', '.join(THRESHOLDS)}")
    base = THRESHOLDS[precision]
    if precision in _RTOL:
        base = replace(base, rtol=_RTOL[precision](depth))
    if overrides:
        unknown = set(overrides) - set(asdict(base))
        if unknown:
            raise InputError(f"unknown threshold(s) {sorted(unknown)}; "
                             f"known: {', '.join(asdict(base))}")
        base = replace(base, **overrides)
    if precision not in _RTOL and "min_snr_db" not in (overrides or {}):
        base = replace(base, min_snr_db=snr_for_cosine(base.min_cosine))
    return base


@dataclass
class OutputCheck:
    """Metrics of one output (the worst over the input sets), and the reasons it fails
    (empty when it passes)."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    cosine: float
    snr_db: float
    top1: Optional[float] = None
    failures: List[str] = field(default_factory=list)
    kind: str = "float"                       # "float" or "index" (integer/bool: exact)
    bound: Optional[float] = None             # the largest max_abs the bound allowed
    index_agreement: Optional[float] = None   # integer outputs: fraction equal
    top1_judged: Optional[int] = None         # class-score rows outside the noise margin
    cosine_waived: bool = False               # whole error below atol: cosine not gated
    worst_input: str = ""                     # the input set the metrics come from

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def top1_unjudged(self) -> bool:
        """Class scores whose argmax differs somewhere while no row leads by more than
        the noise: the top-1 gate had nothing to judge (real inputs would)."""
        return self.top1_judged == 0 and self.top1 is not None and self.top1 < 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["top1_unjudged"] = self.top1_unjudged
        d["shape"] = list(self.shape)
        d["passed"] = self.passed
        return d


@dataclass
class Verification:
    """The verdict on one converted model."""

    target: str
    precision: str
    thresholds: Thresholds
    outputs: List[OutputCheck]
    inputs: str                       # how the inputs were made, all sets in one line
    notes: List[str] = field(default_factory=list)
    input_sets: List[str] = field(default_factory=list)   # one description per set
    reference: str = ""               # what the results were compared with
    reference_problem: Optional[str] = None   # no trustworthy reference: never passes

    @property
    def passed(self) -> bool:
        return self.reference_problem is None and all(o.passed for o in self.outputs)

    @property
    def failures(self) -> List[str]:
        head = [f"reference: {self.reference_problem}"] if self.reference_problem else []
        return head + [f"{o.name}: {f}" for o in self.outputs for f in o.failures]

    def to_dict(self) -> dict:
        return {"target": self.target, "precision": self.precision, "passed": self.passed,
                "inputs": self.inputs, "input_sets": list(self.input_sets),
                "reference": self.reference, "reference_problem": self.reference_problem,
                "thresholds": asdict(self.thresholds),
                "outputs": [o.to_dict() for o in self.outputs], "notes": list(self.notes)}

    def table_rows(self) -> List[List[str]]:
        from edgert.formatting import fmt_num

        rows = []
        for o in self.outputs:
            verdict = "ok" if o.passed else "FAIL: " + "; ".join(o.failures)
            if o.passed and o.top1_unjudged:
                verdict = (f"UNJUDGED: top-1 {o.top1:.2f} but every row a tie within "
                           f"noise; verify on real inputs")
            if o.passed and self.reference_problem:
                verdict = "UNVERIFIED: " + self.reference_problem
            rows.append([self.target, o.name, "x".join(map(str, o.shape)), fmt_num(o.max_abs),
                         "-" if o.bound is None else fmt_num(o.bound), fmt_num(o.max_rel),
                         f"{o.cosine:.7f}", fmt_num(o.snr_db),
                         "-" if o.top1 is None else f"{o.top1:.2f}", verdict])
        return rows


TABLE_COLUMNS = ["target", "output", "shape", "max abs", "bound", "max rel", "cosine",
                 "SNR dB", "top-1", "verdict"]


# -- metrics ---------------------------------------------------------------------------

def metrics(reference: np.ndarray, result: np.ndarray) -> Dict[str, Optional[float]]:
    """max_abs, max_rel, cosine, snr_db, top1 of ``result`` against ``reference`` (same shape)."""
    ref = np.asarray(reference, dtype=np.float64)
    res = np.asarray(result, dtype=np.float64)
    diff = ref - res
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    nr, ns = float(np.linalg.norm(ref)), float(np.linalg.norm(res))
    if nr == 0 and ns == 0:
        cosine = 1.0
    elif nr == 0 or ns == 0:
        cosine = 0.0
    else:
        cosine = float(np.clip(np.dot(ref.ravel(), res.ravel()) / (nr * ns), -1.0, 1.0))
    noise = float(np.sum(diff * diff))
    signal = float(np.sum(ref * ref))
    if noise == 0:
        snr = math.inf
    elif signal == 0:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(signal / noise)
    top1 = None
    if _classifier_shaped(reference):
        top1 = float(np.mean(np.argmax(ref, axis=1) == np.argmax(res, axis=1)))
    return {"max_abs": max_abs, "max_rel": max_rel, "cosine": cosine, "snr_db": snr,
            "top1": top1}


def _classifier_shaped(a: np.ndarray) -> bool:
    a = np.asarray(a)
    return a.ndim == 2 and a.shape[1] >= 2 and a.shape[0] >= 1 and \
        np.issubdtype(a.dtype, np.floating)


def is_index(a: np.ndarray) -> bool:
    """Integer and bool outputs compare exactly."""
    return np.issubdtype(np.asarray(a).dtype, np.integer) or np.asarray(a).dtype == np.bool_


def noise_allowance(reference: np.ndarray, t: Thresholds) -> float:
    """The error the precision admits in this output: its bound where it has one, else
    the rms error its cosine gate admits (sqrt(2 (1 - c)) rms(ref))."""
    ref = np.asarray(reference, dtype=np.float64)
    if t.rtol is not None:
        return t.atol + t.rtol * (float(np.max(np.abs(ref))) if ref.size else 0.0)
    rms = float(np.sqrt(np.mean(ref * ref))) if ref.size else 0.0
    return math.sqrt(max(0.0, 2.0 * (1.0 - t.min_cosine))) * rms


def top1_judgement(reference: np.ndarray, result: np.ndarray, allowance: float
                   ) -> Tuple[int, int]:
    """(rows judged, rows whose argmax differs among them): a row is judged when the
    reference's top-1 leads its runner-up by more than twice ``allowance``."""
    ref, res = np.asarray(reference, np.float64), np.asarray(result, np.float64)
    top2 = np.sort(ref, axis=1)[:, -2:]
    judged = (top2[:, 1] - top2[:, 0]) > 2.0 * allowance
    differs = np.argmax(ref, axis=1) != np.argmax(res, axis=1)
    return int(judged.sum()), int((judged & differs).sum())


# -- one output -------------------------------------------------------------------------

def _nonfinite_mismatch(ref: np.ndarray, res: np.ndarray) -> Optional[str]:
    """Why NaN/inf do not sit where the source has them (None when they do)."""
    ref_nan, res_nan = np.isnan(ref), np.isnan(res)
    ref_inf, res_inf = np.isinf(ref), np.isinf(res)
    if not ref_nan.any() and not ref_inf.any():
        if res_nan.any() or res_inf.any():
            return "result has NaN or inf where the source has none"
        return None
    bad = (ref_nan != res_nan) | (ref_inf != res_inf) | \
        (ref_inf & res_inf & (np.sign(ref) != np.sign(res)))
    if bad.any():
        return f"NaN/inf differ from the source's at {int(bad.sum())} element(s)"
    return None


def check_output(name: str, reference: np.ndarray, result: np.ndarray,
                 thresholds: Thresholds, class_scores: Optional[bool] = None,
                 noise_floor: Optional[float] = None) -> OutputCheck:
    """One output against its reference under ``thresholds``; ``class_scores``: whether
    the top-1 gate applies (None: any rank-2 float output with >= 2 classes).
    ``noise_floor``: ``NOISE_FLOOR_STEPS`` int8 steps of this output's scale: a
    reference lying entirely within it is judged by max abs error <= it, not by cosine
    and SNR, which are noise there (a scalar 0.0007 that int8 writes as 0, 2.4 steps
    away, has cosine 0)."""
    reference, result = np.asarray(reference), np.asarray(result)
    failures: List[str] = []
    if reference.shape != result.shape:
        if reference.size != result.size:
            return OutputCheck(name, tuple(result.shape), math.inf, math.inf, 0.0, -math.inf,
                               failures=[f"shape {result.shape} != source {reference.shape}"])
        failures.append(f"shape {result.shape} differs from the source's {reference.shape}")
        result = result.reshape(reference.shape)
    if is_index(reference):
        return _check_index(name, reference, result, thresholds, failures)
    return _check_float(name, reference, result, thresholds, failures, class_scores,
                        noise_floor)


def _check_index(name, reference, result, t: Thresholds, failures: List[str]) -> OutputCheck:
    if np.issubdtype(result.dtype, np.floating) and not np.all(np.isfinite(result)):
        failures.append("result has NaN or inf in an integer output")
        result = np.nan_to_num(result)
    equal = reference.astype(np.int64) == np.asarray(result).astype(np.int64)
    agreement = float(np.mean(equal)) if equal.size else 1.0
    if agreement < t.min_index_agreement:
        k = int(np.argmax(~equal.ravel()))
        failures.append(
            f"{int(equal.size - equal.sum())} of {equal.size} values differ (exact "
            f"comparison; first at flat index {k}: {result.ravel()[k].item()!r} vs source "
            f"{reference.ravel()[k].item()!r})" if t.min_index_agreement >= 1 else
            f"{agreement:.3f} of the values agree < {t.min_index_agreement}")
    m = metrics(reference.astype(np.float64), np.asarray(result).astype(np.float64))
    return OutputCheck(name, tuple(reference.shape), m["max_abs"], m["max_rel"], m["cosine"],
                       m["snr_db"], None, failures, kind="index", index_agreement=agreement)


#: unit roundoff of the float formats narrower than float32 an output may be stored in
_STORAGE_U = {np.dtype(np.float16): 2.0 ** -11}
_FP16_TINY = 2.0 ** -24      # float16's smallest subnormal


def storage_rounding(*arrays: np.ndarray) -> float:
    """The unit roundoff of the narrowest format among ``arrays`` (0 for float32 and
    wider). A model whose output is float16 (``return y.half()``) rounds it there; an
    engine that returns the float32 value unrounded differs from it by up to an ulp
    of float16, which is arithmetic, not an error."""
    return max((_STORAGE_U.get(np.asarray(a).dtype, 0.0) for a in arrays), default=0.0)


def _check_float(name, reference, result, t: Thresholds, failures: List[str],
                 class_scores: Optional[bool], noise_floor: Optional[float] = None
                 ) -> OutputCheck:
    u = storage_rounding(reference, result)
    if u and t.rtol is not None:     # one ulp of the storage format on either side
        t = replace(t, rtol=t.rtol + 2 * u, atol=t.atol + _FP16_TINY)
    ref64 = reference.astype(np.float64)
    res64 = np.asarray(result).astype(np.float64)
    why = _nonfinite_mismatch(ref64, res64)
    if why:
        failures.append(why)
    same = ~np.isfinite(ref64) | ~np.isfinite(res64)       # judged above; metrics on the rest
    ref64, res64 = np.where(same, 0.0, ref64), np.where(same, 0.0, res64)
    m = metrics(ref64, res64)
    bound = None
    if t.rtol is not None:
        scale = float(np.max(np.abs(ref64))) if ref64.size else 0.0
        bound = t.atol + t.rtol * scale
        if m["max_abs"] > bound:
            failures.append(f"max abs error {m['max_abs']:.3g} > bound {bound:.3g} (atol "
                            f"{t.atol:.2g} + rtol {t.rtol:.2g} x max|ref| {scale:.3g})")
    waived = bound is not None and m["max_abs"] <= t.atol
    if noise_floor is not None and ref64.size and \
            float(np.max(np.abs(ref64))) <= noise_floor:
        waived = True                 # the whole output is a few int8 steps from zero
        if m["max_abs"] > noise_floor:
            failures.append(f"max abs error {m['max_abs']:.3g} > {noise_floor:.3g}, "
                            f"{NOISE_FLOOR_STEPS:g} int8 steps of this output (which lies "
                            f"entirely within them, so cosine and SNR are not judged)")
    if not waived and (not math.isfinite(m["cosine"]) or m["cosine"] < t.min_cosine):
        failures.append(f"cosine {m['cosine']:.7f} < {t.min_cosine}")
    if t.min_snr_db is not None and not waived and m["snr_db"] < t.min_snr_db:
        failures.append(f"SNR {m['snr_db']:.1f} dB < {t.min_snr_db:.1f} (a scale error or "
                        f"bias: cosine ignores those)")
    if t.max_rel is not None and m["max_rel"] > t.max_rel:
        failures.append(f"max rel {m['max_rel']:.3g} > {t.max_rel}")
    if t.max_abs is not None and m["max_abs"] > t.max_abs:
        failures.append(f"max abs {m['max_abs']:.3g} > {t.max_abs}")
    judged = None
    gate_top1 = _classifier_shaped(reference) if class_scores is None else \
        bool(class_scores) and _classifier_shaped(reference)
    if gate_top1 and t.min_top1 is not None:
        allowance = noise_allowance(ref64, t)
        judged, differ = top1_judgement(ref64, res64, allowance)
        if judged and (judged - differ) / judged < t.min_top1:
            failures.append(f"top-1 differs on {differ} of {judged} rows whose source lead "
                            f"exceeds twice the noise allowance ({2 * allowance:.3g})")

    return OutputCheck(name, tuple(reference.shape), m["max_abs"], m["max_rel"], m["cosine"],
                       m["snr_db"], m["top1"], failures, bound=bound, top1_judged=judged,
                       cosine_waived=waived)


# -- whole models -----------------------------------------------------------------------

def _pairs(ref_names: List[str], res_names: List[str], notes: List[str]
           ) -> Optional[List[Tuple[str, str]]]:
    """Outputs matched by name, else by position (noted); None when neither works."""
    if set(ref_names) <= set(res_names):
        return [(n, n) for n in ref_names]
    if len(ref_names) == len(res_names):
        notes.append(f"output names differ ({res_names} vs {ref_names}); matched by position")
        return list(zip(ref_names, res_names))
    return None


def _worst(checks: Sequence[OutputCheck], names: Sequence[str]) -> OutputCheck:
    """One output's checks over several input sets as one: the worst of each metric,
    every failure (named by its set when there are several)."""
    if len(checks) == 1:
        checks[0].worst_input = names[0]
        return checks[0]
    k = int(np.argmax([c.max_rel if math.isfinite(c.max_rel) else math.inf for c in checks]))
    out = replace(checks[k], worst_input=names[k], failures=[
        f"{f} (inputs: {n})" for c, n in zip(checks, names) for f in c.failures])
    out.cosine = min(c.cosine for c in checks)
    out.snr_db = min(c.snr_db for c in checks)
    out.max_abs = max(c.max_abs for c in checks)
    tops = [c.top1 for c in checks if c.top1 is not None]
    out.top1 = min(tops) if tops else None
    agree = [c.index_agreement for c in checks if c.index_agreement is not None]
    out.index_agreement = min(agree) if agree else None
    out.cosine_waived = all(c.cosine_waived for c in checks)
    return out


def compare_sets(references: Sequence[Mapping[str, np.ndarray]],
                 results: Sequence[Mapping[str, np.ndarray]], set_names: Sequence[str],
                 target: str, precision: str,
                 thresholds: Optional[Mapping[str, float]] = None, *,
                 depths: Optional[Mapping[str, int]] = None,
                 class_scores: Optional[Collection[str]] = None, reference: str = "",
                 reference_problem: Optional[str] = None,
                 steps: Optional[Mapping[str, float]] = None) -> Verification:
    """Compare each input set's outputs by name (by position when the result renamed
    them), each output under the gates of its depth (``depths``, default 1), top-1 on
    ``class_scores`` (None: every classifier-shaped output). ``steps``: the int8 step of
    the outputs of an int8 model (the table's scales); see ``check_output``'s
    ``noise_floor``."""
    base = thresholds_for(precision, thresholds)
    notes: List[str] = []
    ref_names, res_names = list(references[0]), list(results[0])
    pairs = _pairs(ref_names, res_names, notes)
    inputs = "; ".join(set_names)
    if pairs is None:
        missing = [n for n in ref_names if n not in results[0]]
        return Verification(target, precision, base, [
            OutputCheck(n, tuple(np.shape(references[0][n])), math.inf, math.inf, 0.0,
                        -math.inf, failures=["missing from the converted model"])
            for n in missing], inputs, [f"converted model outputs: {res_names}"],
            list(set_names), reference, reference_problem)
    checks = []
    for ref_n, res_n in pairs:
        t = thresholds_for(precision, thresholds, (depths or {}).get(ref_n, 1))
        step = (steps or {}).get(ref_n)
        # a few steps, not the depth's bound: 2 x depth steps is most of a deep net's
        # output range (MobileNetV2's logits at cosine 0.87 would pass)
        floor = NOISE_FLOOR_STEPS * float(step) if step and t.rtol is None else None
        cls = None if class_scores is None else ref_n in class_scores
        per_set = [check_output(ref_n, ref[ref_n], res[res_n], t, cls, noise_floor=floor)
                   for ref, res in zip(references, results)]
        checks.append(_worst(per_set, set_names))
    return Verification(target, precision, base, checks, inputs, notes, list(set_names),
                        reference, reference_problem)


def compare(reference: Mapping[str, np.ndarray], result: Mapping[str, np.ndarray],
            target: str, precision: str, thresholds: Optional[Mapping[str, float]] = None,
            inputs: str = "", **kw) -> Verification:
    """``compare_sets`` on one input set."""
    return compare_sets([reference], [result], [inputs], target, precision, thresholds, **kw)


# -- inputs ----------------------------------------------------------------------------



def random_feeds(specs: Sequence[tuple], seed: int = 0, dynamic_size: int = 1,
                 dynamic_other: int = DYNAMIC_DIM) -> Dict[str, np.ndarray]:
    """Seeded inputs for (name, shape, dtype) specs: N(0, 1) floats, small ints, bools.

    A dynamic dim 0 (the batch) gets ``dynamic_size``; other dynamic dims (height, width,
    sequence length) get ``dynamic_other``: 1 would be too small for strided layers.
    An input whose shape needs more memory than the tensor budget of ``edgert.limits``
    (a quarter of the memory limit, counting the float64 the values are drawn in) is an
    ``InputError`` naming it, raised before anything is allocated.
    """
    rng = np.random.default_rng(seed)
    shapes = {}
    for name, shape, dtype in specs:
        dims = tuple(d if isinstance(d, int) and d > 0 else
                     (dynamic_size if i == 0 else dynamic_other) for i, d in enumerate(shape))
        dtype = np.dtype(dtype)
        drawn = nbytes(dims, np.float64 if dtype.kind == "f" else np.int64)
        if drawn > tensor_budget():
            raise InputError(
                f"verification input {name!r} of shape {'x'.join(map(str, dims))} "
                f"{dtype.name} would take {fmt_bytes(nbytes(dims, dtype))} ({fmt_bytes(drawn)} "
                f"while drawn), over the limit of {fmt_bytes(tensor_budget())} per tensor "
                f"({MEMORY_ENV} sets the memory limit, a quarter of it per tensor). Fix the "
                f"input's dims (--input-shape {name}=...) or give inputs (--verify-inputs)")
        shapes[name] = (dims, dtype)
    feeds = {}
    for name, (dims, dtype) in shapes.items():
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(dims).astype(dtype)
        elif dtype == np.bool_:
            feeds[name] = rng.integers(0, 2, dims).astype(bool)
        else:
            feeds[name] = rng.integers(0, 2, dims).astype(dtype)
    return feeds


def load_feeds(source: Union[str, "os.PathLike[str]", Mapping[str, np.ndarray], np.ndarray],
               input_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """User inputs: a dict, one array (single-input models), or a .npy/.npz path."""
    if isinstance(source, (str, os.PathLike)):
        from edgert.files import load_arrays

        source = load_arrays(source)
    if isinstance(source, np.ndarray):
        if len(input_names) != 1:
            raise InputError(f"one array given but the model has inputs {list(input_names)}; "
                             "use a .npz / dict keyed by input name")
        return {input_names[0]: source}
    feeds = dict(source)
    unknown = [k for k in feeds if k not in input_names]
    missing = [k for k in input_names if k not in feeds]
    if unknown or missing:
        raise InputError(f"verification inputs: unknown {unknown}, missing {missing}; "
                         f"model inputs: {list(input_names)}")
    return feeds


# -- the test helper -------------------------------------------------------------------

def assert_close(reference: np.ndarray, result: np.ndarray, precision: str = "fp32",
                 name: str = "output") -> None:
    """Raise AssertionError unless ``result`` matches ``reference`` for ``precision``:
    shape and dtype first, then the element-wise tolerance of ``TOLERANCES`` and the
    cosine gate of ``THRESHOLDS``."""
    reference, result = np.asarray(reference), np.asarray(result)
    if reference.shape != result.shape:
        raise AssertionError(f"{name}: shape {result.shape} != reference {reference.shape}")
    if reference.dtype != result.dtype:
        raise AssertionError(f"{name}: dtype {result.dtype} != reference {reference.dtype}")
    if precision not in TOLERANCES:
        raise AssertionError(f"no tolerance for precision {precision!r}")
    tol = TOLERANCES[precision]
    ref = reference.astype(np.float64)
    res = result.astype(np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    bound = tol["atol"] * max(scale, 1e-12) + tol["rtol"] * np.abs(ref)
    excess = np.abs(ref - res) - bound
    if np.any(excess > 0) or not np.all(np.isfinite(res) == np.isfinite(ref)):
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else ()
        raise AssertionError(
            f"{name}: {int(np.sum(excess > 0))} of {ref.size} elements outside {precision} "
            f"tolerance (atol {tol['atol']} x max|ref| {scale:.3g}, rtol {tol['rtol']}); worst "
            f"at {tuple(int(i) for i in worst)}: {res[worst]!r} vs {ref[worst]!r}")
    m = metrics(ref, res)
    gate = THRESHOLDS[precision].min_cosine
    if m["cosine"] < gate:
        raise AssertionError(f"{name}: cosine {m['cosine']:.7f} < {gate} ({precision})")
