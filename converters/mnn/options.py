"""The MNN backend's own knobs (``convert(backend_options={"mnn": {...}})``).

Each is checked when the options are made (``converters.options``), so a misspelt
name or a wrong type is refused before any work, naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Tuple

from converters.options import TargetOptions, option
from quant_tables.exporters.mnn_compress import SYMMETRIC_MODES


@dataclass(frozen=True)
class MnnOptions(TargetOptions):
    """What MNN's converter is asked besides precision, tables and block size."""

    target: ClassVar[str] = "mnn"

    weight_quant_asymmetric: bool = option(
        False, "int8/int4 weights: pass --weightQuantAsymmetric (in MNN 3.6 it makes the "
               "weights symmetric; docs/CONVERTERS.md)")
    detect_sparse_speedup: bool = option(
        False, "pass --detectSparseSpeedUp (a sparsity table turns it on anyway)")
    mnn_args: Tuple[str, ...] = option(
        (), "raw flags appended to MNN's converter arguments")
    mnn_symmetric: str = option(
        "auto", "full int8: which activations get zero point 0 for MNN's x86 int8 kernels "
                "(docs/QUANTIZATION.md)", choices=SYMMETRIC_MODES)
    approximate_gelu: bool = option(
        False, "keep MNN's fused GELU kernel (max abs error 4.7e-4; about 1.4x faster on "
               "GELU-heavy models, bench/bench_mnn_gelu.py) instead of the exact form")
    timeout_s: float = option(
        600.0, "seconds MNN's converter may take before it is stopped", minimum=1)
