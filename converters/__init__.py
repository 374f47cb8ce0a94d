"""converters: PyTorch / ONNX -> optimized ONNX -> MNN and TFLite, verified.

Public API (imported lazily so ``import converters`` stays cheap):

    from converters import convert
    report = convert(model_or_path, targets=["mnn", "tflite"], example_inputs=(x,))

See docs/ARCHITECTURE.md for the flow and the module map.
"""
from __future__ import annotations

from typing import Any

__all__ = ["convert", "load_source"]


def __getattr__(name: str) -> Any:  # PEP 562: heavy imports only when used
    if name == "convert":
        from converters.api import convert
        return convert
    if name == "load_source":
        from converters.frontends import load_source
        return load_source
    raise AttributeError(f"module 'converters' has no attribute {name!r}")
