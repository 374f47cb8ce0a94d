"""Quantization arithmetic for TFLite tensors, and the hook full int8 plugs into.

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
    """int8 weights and their scales: per channel along ``axis``, or per tensor if ``None``."""
    w = np.asarray(weight, dtype=np.float32)
    if axis is None:
        amax = np.array([np.abs(w).max()], dtype=np.float32)
        scales = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scales[0]), -127, 127).astype(np.int8)
        return q, scales
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scales = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def quantize_bias(bias: np.ndarray, input_scale: float,
                  weight_scales: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """int32 bias and its scales ``input_scale * weight_scales`` (zero point 0)."""
    scales = (float(input_scale) * np.asarray(weight_scales, dtype=np.float64))
    scales = np.broadcast_to(scales, np.shape(bias))
    q = np.round(np.asarray(bias, dtype=np.float64) / scales)
    q = np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    return q, scales.astype(np.float32)


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
