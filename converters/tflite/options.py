"""The TFLite writer's own knobs (``convert(backend_options={"tflite": {...}})``).

Each is checked when the options are made (``converters.options``), so a misspelt
name or a wrong type is refused before any work, naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from converters.options import TargetOptions, option


@dataclass(frozen=True)
class TfliteOptions(TargetOptions):
    """How the TFLite writer stores weights, besides precision and tables."""

    target: ClassVar[str] = "tflite"

    fp16_min_elements: int = option(
        16, "fp16: float constants with fewer elements stay float32 (no bytes to save)",
        minimum=0)
    int8_min_elements: int = option(
        1024, "int8_weights: conv/FC weights with fewer elements stay float32 "
              "(TFLite's own default)", minimum=0)
    tflite_sparse_hybrid: bool = option(
        False, "int8_weights + sparsity table: write 1x16 sparse blocks for the hybrid FC "
               "kernel (interpreters without XNNPACK; docs/SPARSITY.md)")
