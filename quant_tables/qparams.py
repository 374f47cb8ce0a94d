"""Affine quantization arithmetic shared by every producer and consumer.

One place defines what a (scale, zero point, dtype, integer range) means, so a
table made by calibration, by QAT or by an importer lands in every backend the
same way: ``real = scale * (q - zero_point)``, ``q`` clamped to
``[quant_min, quant_max]`` (by default the whole range of ``bits`` in ``dtype``).

numpy only: the runtime side of edgert may use these helpers too.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

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


def qparams_from_range(lo: float, hi: float, dtype: str = "int8", bits: Optional[int] = None,
                       symmetric: bool = False, quant_range: Optional[Tuple[int, int]] = None
                       ) -> Tuple[float, int]:
    """Scale and zero point that map ``[lo, hi]`` (widened to include 0) onto the range.

    Symmetric: zero point at the middle of the range (0 for signed dtypes) and the
    scale covers ``max(|lo|, |hi|)``, as TFLite wants for weights. Asymmetric: the
    range ends map to the integer range ends, the zero point is rounded so 0.0 is
    exact (padding and ReLU depend on that).
    """
    qmin, qmax = quant_range if quant_range is not None else dtype_range(dtype, bits)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        amax = max(-lo, hi)
        signed = INT_DTYPES[dtype][0]
        zp = 0 if signed else (qmin + qmax + 1) // 2
        half = (qmax - qmin) / 2.0
        scale = amax / half if amax > 0 else 1.0
        return _positive(scale), int(zp)
    if hi - lo <= 0:
        return 1.0, int(np.clip(0, qmin, qmax))
    scale = (hi - lo) / float(qmax - qmin)
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return _positive(scale), zp


def _positive(scale: float) -> float:
    # A tensor that is all zeros still needs a valid (positive) scale.
    return float(scale) if scale > np.finfo(np.float32).tiny else float(np.finfo(np.float32).eps)


def per_channel_symmetric(w: np.ndarray, axis: int, dtype: str = "int8",
                          bits: Optional[int] = None, narrow: bool = True) -> np.ndarray:
    """Per-channel symmetric scales of a weight: ``max|w|`` over each slice of ``axis``.

    ``narrow`` uses ``[-(2^(b-1)-1), 2^(b-1)-1]`` (TFLite's rule for int8 weights).
    """
    qmin, qmax = dtype_range(dtype, bits)
    if narrow:
        qmin = -qmax
    red = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    amax = np.max(np.abs(w), axis=red) if red else np.abs(w)
    scale = amax.astype(np.float64) / ((qmax - qmin) / 2.0)
    return np.where(scale > 0, scale, np.finfo(np.float32).eps)


def broadcast(values, ndim: int, axis: Optional[int]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 1 or axis is None:
        return arr.reshape(()) if arr.size == 1 else arr
    shape = [1] * ndim
    shape[axis % ndim] = arr.size
    return arr.reshape(shape)


def quantize(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int,
             axis: Optional[int] = None) -> np.ndarray:
    """Round to nearest even (as QuantizeLinear and PyTorch do), clamp; int64 out."""
    x = np.asarray(x, dtype=np.float64)
    s = broadcast(scale, x.ndim, axis)
    z = broadcast(zero_point, x.ndim, axis)
    return np.clip(np.rint(x / s) + z, quant_min, quant_max).astype(np.int64)


def dequantize(q: np.ndarray, scale, zero_point, axis: Optional[int] = None) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    s = broadcast(scale, q.ndim, axis)
    z = broadcast(zero_point, q.ndim, axis)
    return ((q - z) * s).astype(np.float32)


def fake_quant(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int,
               axis: Optional[int] = None) -> np.ndarray:
    """``dequantize(quantize(x))``: what the integer kernel will see, in float."""
    return dequantize(quantize(x, scale, zero_point, quant_min, quant_max, axis),
                      scale, zero_point, axis)


def to_signed(zero_point, quant_min: int, quant_max: int, dtype: str) -> Tuple[np.ndarray, int, int]:
    """Re-express an unsigned quantization in the signed dtype of the same width.

    uint8 (zp, [0, 255]) is the same set of real values as int8 (zp-128, [-128, 127]):
    TFLite full-int8 and MNN want int8 activations.
    """
    signed, width = INT_DTYPES[dtype]
    zp = np.asarray(zero_point, dtype=np.int64)
    if signed:
        return zp, quant_min, quant_max
    shift = 1 << (width - 1)
    return zp - shift, quant_min - shift, quant_max - shift
