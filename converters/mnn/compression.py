"""Hooks for MNN's compression-parameters file (full int8, sparsity).

MNN takes activation/weight scales for full int8, and PRUNE / SIMD_OC
sparsity information, from ``--compressionParamsFile``; a name ending in
``.json`` is read as JSON. Layers are matched by the conv's output tensor name
*after* fusion, i.e. the names in the optimized ONNX. The quantization-table
helper fills these functions in; until then they say so instead of writing
a file MNN would silently misread.

Each builder returns the parameters as a dict (merged into one JSON file by
the backend) and the extra converter flags it needs.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from edgert.errors import UnsupportedOptionError


def quantization_params(model: Any, quant_table: Any) -> Tuple[Dict[str, Any], List[str]]:
    """Full-int8 parameters for ``quant_table`` (a quant_tables.QuantTable) on ``model``."""
    raise UnsupportedOptionError(
        "MNN full int8 (precision='int8') needs the compression-params writer from the "
        "quantization-table work, which is not in this build; use int8_weights or "
        "int4_weights for weight-only quantization")


def sparsity_params(model: Any, sparsity_table: Any) -> Tuple[Dict[str, Any], List[str]]:
    """PRUNE/SIMD_OC parameters (and ``--detectSparseSpeedUp``) for ``sparsity_table``."""
    raise UnsupportedOptionError(
        "MNN sparsity tables need the sparsity-params writer from the quantization-table "
        "work, which is not in this build")
