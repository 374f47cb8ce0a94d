"""Writing onnx_ir models to disk: weights inline below 1 GB, in an external
``<file>.data`` next to the model above it (protobuf caps a file at 2 GB)."""
from __future__ import annotations

import os
from typing import Union

import onnx_ir as ir

EXTERNAL_DATA_BYTES = 1 << 30


def save_onnx(model: ir.Model, path: Union[str, "os.PathLike[str]"]) -> None:
    path = os.fspath(path)
    size = sum(v.const_value.nbytes for v in model.graph.initializers.values()
               if v.const_value is not None)
    if size > EXTERNAL_DATA_BYTES:
        ir.save(model, path, external_data=os.path.basename(path) + ".data")
    else:
        ir.save(model, path)
