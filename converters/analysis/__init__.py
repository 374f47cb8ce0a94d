"""Model analysis on the ONNX graph: per-layer FLOPs, MACs, weight and activation
bytes, arithmetic intensity, for fp32, fp16 and int8 storage.

This is what the roofline model (``converters.roofline``) places against a
device's roofs. Costs come from one small module per op family
(``converters/analysis/ops/``) behind a registry; ops with no cost model are
counted as memory traffic only and named in a note, never dropped.

    from converters.analysis import analyze
    a = analyze("model.onnx")                       # or an onnx.ModelProto
    a.total_macs, a.total_flops, a.weight_bytes("int8"), a.layers[0].intensity("fp32")
"""
from __future__ import annotations

from typing import Any

__all__ = ["analyze", "ModelAnalysis", "LayerCost", "OpCost", "PRECISIONS", "supported_ops"]


def __getattr__(name: str) -> Any:  # PEP 562: onnx is imported only when used
    if name == "analyze":
        from converters.analysis.analyzer import analyze
        return analyze
    if name in ("ModelAnalysis", "LayerCost", "OpCost", "PRECISIONS"):
        from converters.analysis import cost
        return getattr(cost, name)
    if name == "supported_ops":
        from converters.analysis.registry import supported_ops
        return supported_ops
    raise AttributeError(f"module 'converters.analysis' has no attribute {name!r}")
