"""The QDQ extractor as an importer: ``--from qdq`` gives the table and the float model."""
from __future__ import annotations

import os
from typing import Any, Optional

from quant_tables.importers import ImportResult
from quant_tables.provenance import Provenance


def import_qdq(source: Any, model: Optional[Any] = None) -> ImportResult:
    from quant_tables.producers.qdq_onnx import extract_qdq

    name = os.path.basename(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else ""
    result = extract_qdq(source, source_name=name)
    if isinstance(source, (str, os.PathLike)):
        prov = Provenance.for_file("qdq_onnx", os.fspath(source),
                                   method="QuantizeLinear/DequantizeLinear")
        result.table.provenance = prov
    return ImportResult(result.table, result.model, result.notes)
