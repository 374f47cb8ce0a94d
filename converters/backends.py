"""The backend registry: one backend per target format.

A backend takes the optimized graph (an ``onnx_ir.Model`` after the pass
pipeline) and writes one file. It also answers "can you take this node, and if
not, why?" separately from emitting it, so the unsupported-op error can name the
node, its op and the target before any file is written.

Adding a target is one module that calls ``register_backend`` and one import in
``_BACKEND_MODULES``.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Type

from converters.errors import ConversionError

# target name -> module that registers it (imported on first use)
_BACKEND_MODULES: Dict[str, str] = {
    "mnn": "converters.mnn.backend",
    "tflite": "converters.tflite.backend",
}
_REGISTRY: Dict[str, Type["Backend"]] = {}

PRECISIONS = ("fp32", "fp16", "int8_weights", "int4_weights", "int8")


@dataclass
class BackendOptions:
    """What a user asks of a target. Backends reject what they cannot honor."""

    precision: str = "fp32"            # one of PRECISIONS
    quant_table: Any = None            # quant_tables.QuantTable for precision="int8"
    sparsity_table: Any = None         # quant_tables.SparsityTable
    io_layout: str = "source"          # "source" (keep NCHW I/O) or "nhwc" (TFLite)
    io_dtype: str = "float"            # "float" or "int8" (full-int8 TFLite I/O)
    weight_block_size: int = 0         # block-wise weight quantization (0 = per channel)
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class BackendResult:
    """One written model file and what the backend learned writing it."""

    target: str
    path: Path
    size_bytes: int
    op_counts: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)       # human-readable facts and warnings
    details: Dict[str, Any] = field(default_factory=dict)  # machine-readable (per-layer reports...)


class Backend(ABC):
    """Writes one target format from an optimized ONNX graph."""

    name: str = ""
    extension: str = ""

    @abstractmethod
    def check(self, model: Any, options: BackendOptions) -> None:
        """Raise ``UnsupportedOpError`` (node, op, target) for the first node it cannot take."""

    @abstractmethod
    def convert(self, model: Any, out_path: Path, options: BackendOptions) -> BackendResult:
        """Write ``model`` (an ``onnx_ir.Model``) to ``out_path``."""


def register_backend(cls: Type[Backend]) -> Type[Backend]:
    """Class decorator: register a backend under ``cls.name`` (duplicates are an error)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"backend {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_backend(name: str) -> Backend:
    """An instance of the backend for target ``name``."""
    if name not in _BACKEND_MODULES:
        raise ConversionError(f"unknown target {name!r}; targets: {', '.join(_BACKEND_MODULES)}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(_BACKEND_MODULES[name])
        except ImportError as exc:
            raise ConversionError(f"target {name!r} is not available in this install: "
                                  f"{exc}") from None
        if name not in _REGISTRY:
            raise ConversionError(f"{_BACKEND_MODULES[name]} did not register target {name!r}")
    return _REGISTRY[name]()


def target_names() -> List[str]:
    return list(_BACKEND_MODULES)


