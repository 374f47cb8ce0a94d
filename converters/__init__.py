"""converters: PyTorch / ONNX -> optimized ONNX -> MNN and TFLite, verified.

Public API (imported lazily so ``import converters`` stays cheap):

    from converters import convert
    report = convert(model_or_path, targets=["mnn", "tflite"], example_inputs=(x,))
    run = prune_model("zoo:mobilenet_v2", pattern="channel", sparsity=0.3, targets="mnn")

See docs/ARCHITECTURE.md for the flow and the module map.
"""
from __future__ import annotations

from typing import Any

__all__ = ["convert", "load_source", "prune_model"]


def __getattr__(name: str) -> Any:  # PEP 562: heavy imports only when used
    if name == "convert":
        from converters.api import convert
        return convert
    if name == "load_source":
        from converters.frontends import load_source
        return load_source
    if name == "prune_model":
        from converters.prune_model import prune_model
        return prune_model
    raise AttributeError(f"module 'converters' has no attribute {name!r}")
