"""Affine quantization parameters as the tables spell them (dtype names, bit widths).

One place defines what a (scale, zero point, dtype, integer range) means, so a
table made by calibration, by QAT or by an importer lands in every backend the
same way: ``real = scale * (q - zero_point)``, ``q`` clamped to
``[quant_min, quant_max]`` (by default the whole range of ``bits`` in ``dtype``).
The arithmetic itself (rounding, saturation, zero scales) is the runtime's
``edgert.quantization``; this module adds the table's vocabulary on top.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from edgert.quantization import (INT_DTYPES, asymmetric_params, broadcast, dequantize,
                                 dtype_range, fake_quant, quantize, symmetric_scale,
                                 symmetric_scales)

__all__ = ["INT_DTYPES", "dtype_range", "qparams_from_range", "per_channel_symmetric",
           "broadcast", "quantize", "dequantize", "fake_quant", "to_signed"]


def qparams_from_range(lo: float, hi: float, dtype: str = "int8", bits: Optional[int] = None,
                       symmetric: bool = False, quant_range: Optional[Tuple[int, int]] = None
                       ) -> Tuple[float, int]:
    """Scale and zero point that map ``[lo, hi]`` (widened to include 0) onto the range.

    Symmetric: zero point at the middle of the range (0 for signed dtypes) and the
    scale covers ``max(|lo|, |hi|)``, as TFLite wants for weights. Asymmetric: the
    range ends map to the integer range ends, the zero point is rounded so 0.0 is
    exact (padding and ReLU depend on that). An empty range (an all-zero tensor)
    gets scale ``edgert.quantization.EMPTY_RANGE_SCALE``.
    """
    qmin, qmax = quant_range if quant_range is not None else dtype_range(dtype, bits)
    if not symmetric:
        return asymmetric_params(lo, hi, qmin, qmax)
    zp = 0 if INT_DTYPES[dtype][0] else (qmin + qmax + 1) // 2
    return symmetric_scale(lo, hi, qmin, qmax), zp


def per_channel_symmetric(w: np.ndarray, axis: int, dtype: str = "int8",
                          bits: Optional[int] = None, narrow: bool = True) -> np.ndarray:
    """Per-channel symmetric scales of a weight: ``max|w|`` over each slice of ``axis``.

    ``narrow`` uses ``[-(2^(b-1)-1), 2^(b-1)-1]`` (TFLite's rule for int8 weights). An
    all-zero channel gets ``EMPTY_RANGE_SCALE`` (see ``edgert.quantization``).
    """
    qmin, qmax = dtype_range(dtype, bits)
    if narrow:
        qmin = -qmax
    return symmetric_scales(w, axis, (qmax - qmin) / 2.0)


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
