"""The engine registry: which engine runs which format, imported only when used.

Adding an engine is one module under ``edgert/engines/`` and one row in
``_ENGINES``; no other engine changes. Order in the table is preference: the first
available engine that takes a format runs it.
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Optional, Tuple, Type

from edgert.errors import EngineUnavailableError
from edgert.engines.base import Engine

# name -> (module, class name). Modules are imported lazily: importing edgert
# must not import MNN, LiteRT or ONNX Runtime.
_ENGINES: Dict[str, Tuple[str, str]] = {
    "litert": ("edgert.engines.litert", "LiteRTEngine"),
    "mnn": ("edgert.engines.mnn", "MNNEngine"),
    "onnxruntime": ("edgert.engines.onnxruntime", "OnnxRuntimeEngine"),
}

# format -> engines that load it, preferred first
FORMAT_ENGINES: Dict[str, Tuple[str, ...]] = {
    "tflite": ("litert",),
    "mnn": ("mnn",),
    "onnx": ("onnxruntime",),
}

ALIASES = {"tflite": "litert", "tflite_runtime": "litert", "ort": "onnxruntime", "onnx": "onnxruntime"}


def engine_names() -> List[str]:
    return list(_ENGINES)


def engine_class(name: str) -> Type[Engine]:
    """The engine class for ``name`` (aliases allowed); raises if unknown."""
    key = ALIASES.get(name, name)
    if key not in _ENGINES:
        raise EngineUnavailableError(
            f"unknown engine {name!r}; known engines: {', '.join(_ENGINES)}")
    module, cls = _ENGINES[key]
    return getattr(importlib.import_module(module), cls)


def unavailable_reason(name: str) -> Optional[str]:
    """``None`` when engine ``name`` can be used here, else the reason."""
    return engine_class(name).available()


def available_engines() -> Dict[str, str]:
    """Installed engines and their versions, e.g. ``{"mnn": "3.6.1"}``."""
    found = {}
    for name in _ENGINES:
        cls = engine_class(name)
        if cls.available() is None:
            found[name] = cls.version()
    return found


def pick_engine(fmt: str, requested: Optional[str] = None) -> Type[Engine]:
    """The engine class to load a model of format ``fmt``."""
    if requested:
        cls = engine_class(requested)
        if fmt not in cls.formats:
            raise EngineUnavailableError(
                f"engine {cls.name!r} cannot load {fmt} models "
                f"(it loads: {', '.join(cls.formats)})")
        reason = cls.available()
        if reason:
            raise EngineUnavailableError(f"engine {cls.name!r} is not usable: {reason}")
        return cls
    reasons = []
    for name in FORMAT_ENGINES.get(fmt, ()):
        cls = engine_class(name)
        reason = cls.available()
        if reason is None:
            return cls
        reasons.append(f"{name}: {reason}")
    raise EngineUnavailableError(
        f"no installed engine loads {fmt} models ({'; '.join(reasons) or 'none known'}). "
        f"Install one, e.g. pip install 'edgert[{ {'tflite': 'litert', 'onnx': 'onnx'}.get(fmt, fmt) }]'")
