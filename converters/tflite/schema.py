"""Access to LiteRT's generated flatbuffer schema (``ai_edge_litert.schema_py_generated``).

We write .tflite files with the schema module ai-edge-litert ships (object API:
``ModelT``, ``TensorT``, ``OperatorT``... packed with ``flatbuffers.Builder``), so
field ids and enums always match the interpreter that runs the file. This module
only looks names up in it: op codes, option classes, tensor types.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from edgert.errors import EngineUnavailableError

# The domain TFLite builtins are keyed in by per-builtin tables (``edgert.op_registry``):
# they are not ONNX ops, so they never share the ONNX default domain.
BUILTIN_DOMAIN = "tflite"


@functools.lru_cache(maxsize=1)
def schema() -> Any:
    """The generated schema module (raises a clear error when ai-edge-litert is missing)."""
    try:
        from ai_edge_litert import schema_py_generated as mod  # type: ignore
    except ImportError as exc:  # pragma: no cover - the convert extra installs it
        raise EngineUnavailableError(
            "writing .tflite needs ai-edge-litert (its schema module); "
            f"pip install ai-edge-litert ({exc})") from None
    return mod


def builtin_code(name: str) -> int:
    """``"CONV_2D"`` -> its BuiltinOperator number."""
    try:
        return int(getattr(schema().BuiltinOperator, name))
    except AttributeError:
        raise ValueError(f"unknown TFLite builtin operator {name!r}") from None


def options(kind: str, **fields: Any) -> Any:
    """An options object, e.g. ``options("Conv2D", strideH=2)`` -> ``Conv2DOptionsT``."""
    obj = getattr(schema(), f"{kind}OptionsT")()
    for key, value in fields.items():
        if not hasattr(obj, key):
            raise AttributeError(f"{kind}Options has no field {key!r}")
        setattr(obj, key, value)
    return obj


def options_type(obj: Any) -> int:
    """The BuiltinOptions union tag of an options object."""
    name = type(obj).__name__
    return int(getattr(schema().BuiltinOptions, name[:-1]))


_TENSOR_TYPES = {
    np.dtype(np.float32): "FLOAT32", np.dtype(np.float16): "FLOAT16",
    np.dtype(np.int32): "INT32", np.dtype(np.uint8): "UINT8", np.dtype(np.int64): "INT64",
    np.dtype(np.bool_): "BOOL", np.dtype(np.int16): "INT16", np.dtype(np.int8): "INT8",
    np.dtype(np.float64): "FLOAT64", np.dtype(np.uint32): "UINT32",
}


def tensor_type(dtype: Any) -> int:
    """numpy dtype -> TensorType number."""
    name = _TENSOR_TYPES.get(np.dtype(dtype))
    if name is None:
        raise ValueError(f"TFLite has no tensor type for numpy dtype {np.dtype(dtype)}")
    return int(getattr(schema().TensorType, name))


def activation(name: str) -> int:
    """``"RELU6"`` -> ActivationFunctionType number (``"NONE"`` is 0)."""
    return int(getattr(schema().ActivationFunctionType, name))


def padding(name: str) -> int:
    return int(getattr(schema().Padding, name))
