"""Tensor descriptions shared by every engine, and the (de)quantization that lets
quantized models take and give float arrays.

Affine quantization as TFLite and MNN define it: ``real = scale * (q - zero_point)``,
per tensor or per channel along ``axis``; the arithmetic is ``edgert.quantization``'s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

import numpy as np

from edgert import quantization
from edgert.errors import InputError
from edgert.limits import MEMORY_ENV, fmt_bytes, tensor_budget

# A dynamic dim other than the batch, when one must be chosen (random inputs, the shape a
# model is first allocated with): an image side or a sequence length that strided layers
# can work on. The converters use the same figure for their verification inputs.
DYNAMIC_DIM = 32

Dim = Union[int, str, None]  # a fixed size, a named dynamic dim, or an unknown one


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of one tensor (per tensor when ``scale`` has one value)."""

    scale: Tuple[float, ...]
    zero_point: Tuple[int, ...]
    axis: Optional[int] = None

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def quantize(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Round float ``x`` to integers of ``dtype`` (half to even, saturating);
        ``QuantizationError`` for a scale that is not positive."""
        info = np.iinfo(np.dtype(dtype))
        return quantization.quantize(x, self.scale, self.zero_point, int(info.min),
                                     int(info.max), self.axis).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Turn integers ``q`` back into float32 values."""
        return quantization.dequantize(q, self.scale, self.zero_point, self.axis)

    def to_dict(self) -> dict:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (dynamic dims as ``None`` or a name), dtype and quantization of a model input or output."""

    name: str
    shape: Tuple[Dim, ...]
    dtype: np.dtype
    quantization: Optional[QuantParams] = None
    layout: Optional[str] = field(default=None, compare=False)  # "NCHW"/"NHWC" when the engine knows

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    @property
    def is_quantized(self) -> bool:
        return self.quantization is not None and np.issubdtype(self.dtype, np.integer)

    def concrete_shape(self, dynamic_size: Optional[int] = None) -> Tuple[int, ...]:
        """The shape with every dynamic dim replaced by ``dynamic_size``; by default a
        dynamic dim 0 (the batch) becomes 1 and any other (height, width, sequence
        length) ``DYNAMIC_DIM``: 1 is too small for strided layers."""
        return tuple(d if isinstance(d, int) and d >= 0 else
                     (dynamic_size if dynamic_size is not None else 1 if k == 0 else DYNAMIC_DIM)
                     for k, d in enumerate(self.shape))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": [d if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) else None)
                      for d in self.shape],
            "dtype": np.dtype(self.dtype).name,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }


def shape_str(shape: Tuple[Dim, ...]) -> str:
    """``(1, 3, None, 'batch')`` -> ``'1x3x?xbatch'``."""
    return "x".join(str(d) if isinstance(d, (int, str)) and d != -1 and d is not None else "?"
                    for d in shape) or "scalar"


def nbytes(shape: Tuple[int, ...], dtype) -> int:
    """Bytes of a dense array of ``shape`` and ``dtype``, in Python ints (no overflow)."""
    count = 1
    for d in shape:
        count *= int(d)
    return count * np.dtype(dtype).itemsize


def check_tensor_size(name: str, shape: Tuple[int, ...], dtype, what: str = "input") -> None:
    """Raise ``InputError`` naming ``name`` when a dense ``shape`` array of ``dtype`` would
    take more than the tensor budget (``edgert.limits``), before anything is allocated."""
    size, budget = nbytes(shape, dtype), tensor_budget()
    if size > budget:
        raise InputError(
            f"{what} {name!r} of shape {shape_str(tuple(shape))} {np.dtype(dtype).name} needs "
            f"{fmt_bytes(size)}, over the limit of {fmt_bytes(budget)} per tensor (a quarter "
            f"of the memory limit; set {MEMORY_ENV} to change it)")


def random_input(info: TensorInfo, rng: np.random.Generator,
                 dynamic_size: Optional[int] = None) -> np.ndarray:
    """A seeded random array that fits ``info`` (float in [-1, 1), ints in a small range).

    Quantized inputs get float values: the session quantizes them like a user's floats.
    A shape over the tensor budget is an ``InputError`` before any allocation.
    """
    shape = info.concrete_shape(dynamic_size)
    dt = np.dtype(info.dtype)
    if info.is_quantized or np.issubdtype(dt, np.floating):
        out_dt = np.float32 if info.is_quantized else dt
        check_tensor_size(info.name, shape, out_dt)
        return rng.uniform(-1.0, 1.0, size=shape).astype(out_dt)
    check_tensor_size(info.name, shape, dt)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 10, size=shape).astype(dt)
