"""TFLite's quantization conventions, and the hook full int8 plugs into (the arithmetic
itself is ``edgert.quantization``'s).

TFLite's conventions, which every quantized tensor we write follows:

* weights: int8, symmetric (zero point 0), range [-127, 127], per channel on the
  output-channel axis: axis 0 for CONV_2D (OHWI) and FULLY_CONNECTED ([out, in]),
  axis 3 for DEPTHWISE_CONV_2D ([1, H, W, C*M]);
* bias: int32 with ``scale = s_input * s_weight`` (per channel), zero point 0;
* activations: int8 asymmetric, one scale and zero point per tensor.

``ActivationQuant`` is the hook for full int8: the backend asks it, for every
ONNX value, whether that tensor is int8 and with which parameters. The default
answers "no" (float model). The quantization-table helper supplies one built
from a ``quant_tables.QuantTable`` (see docs/TFLITE.md, "Hooks").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from converters.tflite.schema import schema
from edgert.quantization import quantize, symmetric_scales


def quant_params(scales: Sequence[float], zero_points: Sequence[int], axis: int = 0,
                 min_: Optional[Sequence[float]] = None,
                 max_: Optional[Sequence[float]] = None):
    """A ``QuantizationParametersT`` (one scale: per tensor; several: per channel on ``axis``)."""
    q = schema().QuantizationParametersT()
    q.scale = [float(s) for s in scales]
    q.zeroPoint = [int(z) for z in zero_points]
    q.quantizedDimension = int(axis)
    if min_ is not None:
        q.min = [float(v) for v in min_]
    if max_ is not None:
        q.max = [float(v) for v in max_]
    return q


def symmetric_int8(weight: np.ndarray, axis: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """int8 weights and their scales: per channel along ``axis``, or per tensor if ``None``.

    Scales and quotients in float32 (as this writer always computed them), narrow range
    [-127, 127]; an all-zero channel gets scale 1.0 (``edgert.quantization``)."""
    w = np.asarray(weight, dtype=np.float32)
    scales = symmetric_scales(w, axis, 127.0, compute=np.float32)
    q = quantize(w, scales, 0, -127, 127, axis, compute=np.float32)
    return q.astype(np.int8), scales


def quantize_bias(bias: np.ndarray, input_scale: float,
                  weight_scales: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """int32 bias and its scales ``input_scale * weight_scales`` (zero point 0)."""
    scales = (float(input_scale) * np.asarray(weight_scales, dtype=np.float64))
    scales = np.broadcast_to(scales, np.shape(bias))
    i32 = np.iinfo(np.int32)
    q = quantize(np.asarray(bias, dtype=np.float64), scales, 0, int(i32.min), int(i32.max))
    return q.astype(np.int32), scales.astype(np.float32)


@dataclass(frozen=True)
class TensorQuant:
    """How one activation tensor is quantized (per tensor)."""

    scale: float
    zero_point: int
    dtype: str = "int8"


class ActivationQuant:
    """Full-int8 hook: which activation tensors are quantized. Default: none (float model).

    A table-driven implementation overrides ``of(value_name)``; lowerings then ask
    ``ctx.activation_quant(value)`` and pick int8 kernels, quantize biases with
    ``quantize_bias`` and insert QUANTIZE/DEQUANTIZE at float boundaries.
    """

    def of(self, value_name: str) -> Optional[TensorQuant]:
        return None

    @property
    def active(self) -> bool:
        return False
