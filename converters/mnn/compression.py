"""Hooks for MNN's compression-parameters file (full int8, sparsity).

MNN takes activation/weight scales for full int8, and PRUNE / SIMD_OC
sparsity information, from ``--compressionParamsFile``; a name ending in
``.json`` is read as JSON. Layers are matched by the conv's output tensor name
*after* fusion, i.e. the names in the optimized ONNX. Full int8 is written by
``quant_tables.exporters.mnn_compress`` (the table format's own exporter).

Each builder returns the parameters as a dict (merged into one JSON file by
the backend), the extra converter flags it needs, and notes for the report.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple



def quantization_params(model: Any, quant_table: Any, symmetric: str = "auto"
                        ) -> Tuple[Dict[str, Any], List[str], List[str]]:
    """Full-int8 parameters for ``quant_table`` (a quant_tables.QuantTable) on ``model``."""
    from quant_tables.exporters.mnn_compress import mnn_compression_params
    from converters.errors import ConversionError

    if quant_table is None:
        raise ConversionError("mnn: precision='int8' needs a quantization table")
    doc, report = mnn_compression_params(quant_table, model, symmetric)
    notes = [f"int8: {len(report.layers)} layer(s) quantized by MNN's converter"]
    if report.skipped:
        notes.append(f"float: {len(report.skipped)} layer(s): " + "; ".join(
            f"{node} ({why})" for node, why in report.skipped[:10]))
    if report.symmetric:
        notes.append(f"{len(report.symmetric)} tensor(s) read by MNN's int8 pooling/elementwise "
                     f"ops re-expressed with zero point 0 (its x86 kernels need it)")
    return doc, [], notes


def sparsity_params(model: Any, sparsity_table: Any
                    ) -> Tuple[Dict[str, Any], List[str], List[str], Any]:
    """PRUNE/SIMD_OC parameters for ``sparsity_table``: (params, extra flags, notes, plan).

    The backend adds ``--detectSparseSpeedUp``; ``converters.mnn.sparse`` holds MNN's
    rule and reads back which layers went sparse.
    """
    from converters.mnn.sparse import sparsity_params as _params

    return _params(model, sparsity_table)
