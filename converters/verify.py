"""Numeric verification: does the converted model compute what the source does?

Both sides run on the same inputs (seeded random by default, or the user's
.npy/.npz) and each output is compared with:

- ``max_abs``: max |reference - result|
- ``max_rel``: ``max_abs`` divided by max |reference| (relative to the output's
  range; element-wise relative error explodes near zero and says little)
- ``cosine``: cosine similarity of the flattened outputs (scale-free)
- ``snr_db``: 10 log10(sum ref^2 / sum (ref - result)^2); inf when identical
- ``top1``: for classifier-shaped outputs (rank 2, at least 2 classes), the
  fraction of rows whose argmax agrees

A result passes when its shape matches and every metric meets the thresholds
of its precision (``THRESHOLDS``; override any of them per call). Cosine is
the main gate: the issue asks for fp32 cosine >= 0.99999.

``assert_close`` is the test helper built on the same table: shape and dtype
first, then the precision's tolerance.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from edgert.errors import InputError
from edgert.tensors import DYNAMIC_DIM  # one figure for the runtime and the converters
from edgert.limits import MEMORY_ENV, fmt_bytes, tensor_budget
from edgert.tensors import nbytes


@dataclass(frozen=True)
class Thresholds:
    """Pass criteria for one precision. ``None`` means "reported, not enforced"."""

    min_cosine: float
    min_snr_db: Optional[float] = None
    max_rel: Optional[float] = None
    max_abs: Optional[float] = None
    min_top1: Optional[float] = None


# Per-precision gates, on cosine (SNR carries the same information for unbiased
# noise, SNR ~ -10 log10(2 (1 - cos)), so it is reported, not gated by default).
# fp32: agree with the source to float rounding, and on every top-1 class.
# fp16 weights: about 3 decimal digits. Weight-only int8/int4 and full int8:
# quantization noise (random-weight depthwise nets of the zoo sit near the int8
# gate; trained nets are typically above 0.999, see docs/CONVERTERS.md).
THRESHOLDS: Dict[str, Thresholds] = {
    "fp32": Thresholds(min_cosine=0.99999, min_top1=1.0),
    "fp16": Thresholds(min_cosine=0.999),
    "int8_weights": Thresholds(min_cosine=0.99),
    "int4_weights": Thresholds(min_cosine=0.95),
    "int8": Thresholds(min_cosine=0.98),
}

# Element-wise tolerances of ``assert_close``: |ref - res| <= atol * max|ref| + rtol * |ref|.
TOLERANCES: Dict[str, Dict[str, float]] = {
    "fp32": {"rtol": 1e-4, "atol": 1e-5},
    "fp16": {"rtol": 1e-2, "atol": 2e-3},
    "int8_weights": {"rtol": 5e-2, "atol": 2e-2},
    "int4_weights": {"rtol": 0.2, "atol": 0.1},
    "int8": {"rtol": 0.0, "atol": 1 / 127},  # about one quantization step of the output range
}


def thresholds_for(precision: str, overrides: Optional[Mapping[str, float]] = None
                   ) -> Thresholds:
    if precision not in THRESHOLDS:
        raise InputError(f"no verification thresholds for precision {precision!r}; "
                         f"known: {', '.join(THRESHOLDS)}")
    base = THRESHOLDS[precision]
    if overrides:
        unknown = set(overrides) - set(asdict(base))
        if unknown:
            raise InputError(f"unknown threshold(s) {sorted(unknown)}; "
                             f"known: {', '.join(asdict(base))}")
        base = replace(base, **overrides)
    return base


@dataclass
class OutputCheck:
    """Metrics of one output, and the reasons it fails (empty when it passes)."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    cosine: float
    snr_db: float
    top1: Optional[float] = None
    failures: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        d = asdict(self)
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
    inputs: str                       # how the inputs were made ("seeded random (seed 0)", a path)
    notes: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def failures(self) -> List[str]:
        return [f"{o.name}: {f}" for o in self.outputs for f in o.failures]

    def to_dict(self) -> dict:
        return {"target": self.target, "precision": self.precision, "passed": self.passed,
                "inputs": self.inputs, "thresholds": asdict(self.thresholds),
                "outputs": [o.to_dict() for o in self.outputs], "notes": list(self.notes)}

    def table_rows(self) -> List[List[str]]:
        from edgert.formatting import fmt_num

        rows = []
        for o in self.outputs:
            rows.append([self.target, o.name, "x".join(map(str, o.shape)), fmt_num(o.max_abs),
                         fmt_num(o.max_rel), f"{o.cosine:.7f}", fmt_num(o.snr_db),
                         "-" if o.top1 is None else f"{o.top1:.2f}",
                         "ok" if o.passed else "FAIL: " + "; ".join(o.failures)])
        return rows


TABLE_COLUMNS = ["target", "output", "shape", "max abs", "max rel", "cosine", "SNR dB", "top-1",
                 "verdict"]


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
    if ref.ndim == 2 and ref.shape[1] >= 2 and np.issubdtype(np.asarray(reference).dtype,
                                                              np.floating):
        top1 = float(np.mean(np.argmax(ref, axis=1) == np.argmax(res, axis=1)))
    return {"max_abs": max_abs, "max_rel": max_rel, "cosine": cosine, "snr_db": snr,
            "top1": top1}


def check_output(name: str, reference: np.ndarray, result: np.ndarray,
                 thresholds: Thresholds) -> OutputCheck:
    reference, result = np.asarray(reference), np.asarray(result)
    if reference.shape != result.shape:
        if reference.size == result.size:
            note = f"shape {result.shape} differs from the source's {reference.shape}"
        else:
            return OutputCheck(name, tuple(result.shape), math.inf, math.inf, 0.0, -math.inf,
                               failures=[f"shape {result.shape} != source {reference.shape}"])
        failures = [note]
        result = result.reshape(reference.shape)
    else:
        failures = []
    m = metrics(reference, result)
    t = thresholds
    if not math.isfinite(m["cosine"]) or m["cosine"] < t.min_cosine:
        failures.append(f"cosine {m['cosine']:.7f} < {t.min_cosine}")
    if t.min_snr_db is not None and m["snr_db"] < t.min_snr_db:
        failures.append(f"SNR {m['snr_db']:.1f} dB < {t.min_snr_db}")
    if t.max_rel is not None and m["max_rel"] > t.max_rel:
        failures.append(f"max rel {m['max_rel']:.3g} > {t.max_rel}")
    if t.max_abs is not None and m["max_abs"] > t.max_abs:
        failures.append(f"max abs {m['max_abs']:.3g} > {t.max_abs}")
    if t.min_top1 is not None and m["top1"] is not None and m["top1"] < t.min_top1:
        failures.append(f"top-1 agreement {m['top1']:.2f} < {t.min_top1}")
    if not np.all(np.isfinite(result)) and np.all(np.isfinite(reference)):
        failures.append("result has NaN or inf where the source has none")
    return OutputCheck(name, tuple(reference.shape), m["max_abs"], m["max_rel"], m["cosine"],
                       m["snr_db"], m["top1"], failures)


def compare(reference: Mapping[str, np.ndarray], result: Mapping[str, np.ndarray],
            target: str, precision: str, thresholds: Optional[Mapping[str, float]] = None,
            inputs: str = "") -> Verification:
    """Compare outputs by name (by position when the result renamed them)."""
    t = thresholds_for(precision, thresholds)
    notes: List[str] = []
    ref_names, res_names = list(reference), list(result)
    if set(ref_names) <= set(res_names):
        pairs = [(n, n) for n in ref_names]
    elif len(ref_names) == len(res_names):
        pairs = list(zip(ref_names, res_names))
        notes.append(f"output names differ ({res_names} vs {ref_names}); matched by position")
    else:
        missing = [n for n in ref_names if n not in result]
        return Verification(target, precision, t, [
            OutputCheck(n, tuple(np.shape(reference[n])), math.inf, math.inf, 0.0, -math.inf,
                        failures=["missing from the converted model"]) for n in missing],
            inputs, [f"converted model outputs: {res_names}"])
    checks = [check_output(ref_n, reference[ref_n], result[res_n], t) for ref_n, res_n in pairs]
    return Verification(target, precision, t, checks, inputs, notes)


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
