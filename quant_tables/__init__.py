"""quant_tables: the quantization-table and sparsity-table formats (schema,
load/save, validation) and their producers (QAT models, QDQ ONNX, calibration,
AIMET and TensorRT imports) and exporters (MNN compression params, QDQ ONNX).

numpy only at import; torch/onnx are imported inside the producers that need them.
The formats are described in SCHEMA.md next to this file.
"""
from quant_tables.calibration_data import ImageFolder
from quant_tables.provenance import Provenance
from quant_tables.sparsity_table import SparsityTable, WeightSparsity
from quant_tables.table import ActivationQuant, LayerOverride, QuantTable, WeightQuant

__all__ = ["ActivationQuant", "ImageFolder", "LayerOverride", "Provenance", "QuantTable",
           "SparsityTable", "WeightQuant", "WeightSparsity", "load_table"]


def load_table(path):
    """A QuantTable or SparsityTable, whichever ``path`` holds (by its ``format``)."""
    from quant_tables.table import read_json
    from quant_tables.errors import TableError

    d = read_json(str(path))
    fmt = d.get("format")
    if fmt == "edgert.sparsity-table":
        return SparsityTable.from_dict(d, where=str(path))
    if fmt == "edgert.quant-table":
        return QuantTable.from_dict(d, where=str(path))
    raise TableError(f"{path}: not an edgert table (format is {fmt!r}; expected "
                     f"'edgert.quant-table' or 'edgert.sparsity-table')")
