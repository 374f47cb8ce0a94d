"""edgert: run converted edge models (MNN, TFLite, ONNX) through one small API.

    import edgert
    s = edgert.load("model.tflite", threads=2)
    outputs = s.run({"input": x})
    stats = s.benchmark(runs=50)

This package is what an edge app embeds, so importing it costs numpy and nothing
else: engines load on first use, torch and onnx are never imported here.
"""
from __future__ import annotations

from edgert.errors import (
    EdgertError,
    EngineError,
    EngineUnavailableError,
    InputError,
    ModelFileError,
    QuantizationError,
    RunTimeoutError,
    UnsupportedOptionError,
)
from edgert.session import Session, TensorInfo, load
from edgert.timing import BenchmarkResult
from edgert.engines import available_engines

__version__ = "0.1.0"

__all__ = [
    "load", "Session", "TensorInfo", "BenchmarkResult", "available_engines",
    "EdgertError", "ModelFileError", "EngineUnavailableError", "InputError",
    "UnsupportedOptionError", "EngineError", "QuantizationError", "RunTimeoutError",
    "__version__",
]
