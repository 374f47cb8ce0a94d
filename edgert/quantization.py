"""Affine quantization arithmetic: the one definition every package uses.

``real = scale * (q - zero_point)``, ``q`` rounded and saturated to ``[qmin, qmax]``,
per tensor or per channel along ``axis``. The runtime quantizes feeds and
dequantizes results with it (``edgert.tensors.QuantParams``), the tables derive
their parameters with it (``quant_tables.qparams``), the TFLite writer quantizes
weights, biases and constants with it (``converters.tflite.quant``).

Rounding: ``half_even`` is ONNX QuantizeLinear's, PyTorch's, numpy's and XNNPACK's
(what LiteRT runs by default); ``half_away`` (from zero, C's ``round``) is what
LiteRT's built-in QUANTIZE kernel does without XNNPACK for elements outside its
8-wide vector blocks. Saturation is a clamp to ``[qmin, qmax]`` in every engine;
TFLite weights use the narrow range ``[-127, 127]``.

Zero scales have one rule, by where the scale comes from:

* a scale *given* (read from a model file, a table, a caller) must be a positive
  finite number: zero, negative, NaN or infinite raises ``QuantizationError``.
  There is no affine mapping with scale 0; dividing by it gives inf/NaN that
  cast to arbitrary integers, a silent wrong answer;
* a scale *derived* from data whose range is empty (an all-zero tensor, a pruned
  channel) or too narrow for a normal float32 is ``EMPTY_RANGE_SCALE`` = 1.0. Any
  positive scale represents all zeros exactly (q = 0); 1.0 also keeps what is
  computed from it in range: the int32 bias of a zero weight channel has scale
  ``s_in * s_w``, and the float32 epsilon PyTorch's observers use instead makes that
  bias saturate int32 once ``|bias| > 2^31 * eps * s_in`` (about ``256 * s_in``),
  while 0 (TFLite's own quantizer writes it) is refused by XNNPACK and drops the bias.

numpy only: boards run this without torch or onnx.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from edgert.errors import QuantizationError

ROUNDINGS = ("half_even", "half_away")
EMPTY_RANGE_SCALE = 1.0
_TINY = float(np.finfo(np.float32).tiny)   # the smallest normal float32

# dtype name -> (signed, container width in bits)
INT_DTYPES: Dict[str, Tuple[bool, int]] = {
    "int4": (True, 4), "uint4": (False, 4),
    "int8": (True, 8), "uint8": (False, 8),
    "int16": (True, 16), "uint16": (False, 16),
    "int32": (True, 32),
}


def dtype_range(dtype: str, bits: Optional[int] = None) -> Tuple[int, int]:
    """The integer range of ``bits`` bits stored in ``dtype`` (``bits`` <= width)."""
    signed, width = INT_DTYPES[dtype]
    bits = width if bits is None else int(bits)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def check_scale(scale) -> np.ndarray:
    """``scale`` as float64, or ``QuantizationError`` when one value is not positive finite."""
    s = np.asarray(scale, dtype=np.float64)
    bad = ~(np.isfinite(s) & (s > 0))
    if bad.any():
        where = f" (channel {int(np.flatnonzero(bad.reshape(-1))[0])})" if s.size > 1 else ""
        value = float(s.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        raise QuantizationError(f"quantization scale {value!r}{where} is not a positive finite "
                                "number: it defines no affine mapping")
    return s


def usable_scale(scale):
    """A *derived* scale with every value too small for a normal float32 (zero, an empty
    range) replaced by ``EMPTY_RANGE_SCALE``; a float in, a float out."""
    if np.ndim(scale) == 0:
        s = float(scale)
        return s if s >= _TINY else EMPTY_RANGE_SCALE
    arr = np.asarray(scale, dtype=np.float64)
    return np.where(arr >= _TINY, arr, EMPTY_RANGE_SCALE)


def broadcast(values, ndim: int, axis: Optional[int]) -> np.ndarray:
    """Per-channel ``values`` shaped to broadcast along ``axis`` of an ``ndim`` array."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 1 or axis is None:
        return arr.reshape(()) if arr.size == 1 else arr
    shape = [1] * ndim
    shape[axis % ndim] = arr.size
    return arr.reshape(shape)


def round_half(x: np.ndarray, rounding: str = "half_even") -> np.ndarray:
    """Round to the nearest integer; ties to even or away from zero."""
    if rounding == "half_even":
        return np.rint(x)
    if rounding == "half_away":
        return np.copysign(np.floor(np.abs(x) + 0.5), x)
    raise ValueError(f"rounding {rounding!r}: expected one of {ROUNDINGS}")


def quantize(x, scale, zero_point, qmin: int, qmax: int, axis: Optional[int] = None,
             rounding: str = "half_even", compute=np.float64) -> np.ndarray:
    """``clamp(round(x / scale) + zero_point, qmin, qmax)`` as int64.

    ``compute`` is the float type the division runs in: float64 by default; the TFLite
    writer quantizes float32 constants in float32, as it always has.
    """
    x = np.asarray(x)
    s = broadcast(check_scale(scale), x.ndim, axis).astype(compute)
    z = broadcast(zero_point, x.ndim, axis).astype(compute)
    q = round_half(x.astype(compute) / s, rounding) + z
    return np.clip(q, qmin, qmax).astype(np.int64)


def dequantize(q, scale, zero_point, axis: Optional[int] = None) -> np.ndarray:
    """``scale * (q - zero_point)`` as float32."""
    q = np.asarray(q, dtype=np.float64)
    s = broadcast(check_scale(scale), q.ndim, axis)
    z = broadcast(zero_point, q.ndim, axis)
    return ((q - z) * s).astype(np.float32)


def fake_quant(x, scale, zero_point, qmin: int, qmax: int, axis: Optional[int] = None,
               rounding: str = "half_even") -> np.ndarray:
    """``dequantize(quantize(x))``: what the integer kernel sees, in float."""
    return dequantize(quantize(x, scale, zero_point, qmin, qmax, axis, rounding),
                      scale, zero_point, axis)


def _widened(lo: float, hi: float) -> Tuple[float, float]:
    return min(float(lo), 0.0), max(float(hi), 0.0)


def symmetric_scale(lo: float, hi: float, qmin: int, qmax: int) -> float:
    """The scale mapping ``max(|lo|, |hi|)`` onto half of ``[qmin, qmax]``
    (``EMPTY_RANGE_SCALE`` for an empty range)."""
    lo, hi = _widened(lo, hi)
    return usable_scale(max(-lo, hi) / ((qmax - qmin) / 2.0))


def asymmetric_params(lo: float, hi: float, qmin: int, qmax: int) -> Tuple[float, int]:
    """(scale, zero point) mapping ``[lo, hi]`` (widened to include 0) onto ``[qmin, qmax]``.

    The zero point is rounded (half to even) so that 0.0 is exact, and saturated. An
    empty range gives ``EMPTY_RANGE_SCALE`` with 0.0 at zero point 0.
    """
    lo, hi = _widened(lo, hi)
    scale = (hi - lo) / float(qmax - qmin)
    if scale < _TINY:
        return EMPTY_RANGE_SCALE, int(np.clip(0, qmin, qmax))
    return scale, int(np.clip(round(qmin - lo / scale), qmin, qmax))


def symmetric_scales(w: np.ndarray, axis: Optional[int], half_range: float,
                     compute=np.float64) -> np.ndarray:
    """Symmetric scales of ``w``: ``max|w| / half_range`` over each slice of ``axis`` (one
    value, per tensor, when ``axis`` is None). ``half_range`` is half the integer range:
    127 for TFLite's narrow int8 ``[-127, 127]``, 127.5 for ``[-128, 127]``. Empty
    channels get ``EMPTY_RANGE_SCALE``."""
    a = np.abs(np.asarray(w))
    if axis is None:
        amax = np.array([a.max() if a.size else 0.0], dtype=a.dtype)
    else:
        red = tuple(i for i in range(a.ndim) if i != axis % a.ndim)
        amax = np.max(a, axis=red) if red else a
    scale = amax.astype(compute) / compute(half_range)
    return np.where(scale >= _TINY, scale, compute(EMPTY_RANGE_SCALE)).astype(compute)
