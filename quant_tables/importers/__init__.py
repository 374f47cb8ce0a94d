"""Importers: tables made by other tools turned into edgert quantization tables.

A registry so ``edgert quant-table import --from NAME`` lists what exists and a
new source is one module plus one row. Each importer is ``fn(source, model=None)
-> ImportResult`` and imports its heavy dependencies lazily.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from edgert.errors import UnsupportedOptionError

# name -> (module, function, what it reads)
_IMPORTERS: Dict[str, tuple] = {}


def register_importer(name: str, module: str, function: str, reads: str) -> None:
    if name in _IMPORTERS:
        raise ValueError(f"importer {name!r} registered twice")
    _IMPORTERS[name] = (module, function, reads)


register_importer("aimet", "quant_tables.importers.aimet", "import_aimet",
                  "Qualcomm AIMET encodings JSON (0.x and 1.0.0 layouts)")
register_importer("tensorrt", "quant_tables.importers.tensorrt", "import_tensorrt",
                  "TensorRT calibration cache (TRT-xxxx-...Calibration header)")
register_importer("qdq", "quant_tables.importers.qdq", "import_qdq",
                  "QDQ ONNX model (QuantizeLinear/DequantizeLinear pairs); also writes "
                  "the float model without them")


@dataclass
class ImportResult:
    table: Any                       # QuantTable
    float_model: Any = None          # ModelProto when the source carried the model (qdq)
    notes: List[str] = field(default_factory=list)


def importer_names() -> List[str]:
    return list(_IMPORTERS)


def describe() -> Dict[str, str]:
    return {k: v[2] for k, v in _IMPORTERS.items()}


def get_importer(name: str) -> Callable[..., ImportResult]:
    if name not in _IMPORTERS:
        raise UnsupportedOptionError(f"unknown table source {name!r}; sources: "
                                     f"{', '.join(_IMPORTERS)}")
    module, function, _ = _IMPORTERS[name]
    fn = getattr(importlib.import_module(module), function)

    def run(source: Any, model: Optional[Any] = None) -> ImportResult:
        out = fn(source, model=model)
        return out if isinstance(out, ImportResult) else ImportResult(out)
    return run
