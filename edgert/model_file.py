"""Tell a model file's format and check it before any engine reads it.

Engines written in C++ can crash on a hostile or damaged file. What can be
checked cheaply in Python is checked here (existence, size, identifiers,
FlatBuffer structure for .tflite, protobuf framing for .onnx, the root table for
.mnn). What cannot, a crash deep inside a kernel, is caught by the isolated
first load in ``edgert.probe``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional

from edgert.errors import ModelFileError
from edgert.flatbuf import FlatBufferError, TensorTooLargeError
from edgert.limits import MEMORY_ENV, tensor_budget
from edgert.mnn_file import read_mnn
from edgert.tflite_file import read_tflite

FORMATS = ("tflite", "mnn", "onnx")
_EXTENSIONS = {".tflite": "tflite", ".lite": "tflite", ".mnn": "mnn", ".onnx": "onnx"}


@dataclass
class FileCheck:
    """What the pre-engine check learned about a model file."""

    format: str
    size: int
    details: Dict[str, object] = field(default_factory=dict)


_ZIP_HINT = ("a zip archive, not a model the runtime runs (a PyTorch .pt/.pt2 file? "
             "convert it first: edgert convert FILE --to tflite,mnn)")


def detect_format(path: str, data: Optional[bytes] = None) -> str:
    """``"tflite"``, ``"mnn"`` or ``"onnx"``, from the content first, then the extension."""
    if data is None:
        data = _read(path)
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    if data[:4] == b"PK\x03\x04":
        raise ModelFileError(f"{path}: {_ZIP_HINT}")
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTENSIONS:
        fmt = _EXTENSIONS[ext]
        if fmt == "tflite":
            raise ModelFileError(
                f"{path}: named .tflite but has no TFL3 identifier: not a TFLite model "
                "(or the file is damaged)")
        return fmt
    raise ModelFileError(
        f"{path}: cannot tell the model format (known: .tflite, .mnn, .onnx); "
        "pass format= or rename the file")


def _read(path: str) -> bytes:
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a model file")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ModelFileError(f"{path}: the file is empty")
    return data


def check_model_file(path: str, fmt: Optional[str] = None) -> FileCheck:
    """Check ``path`` as far as Python can; raise ``ModelFileError`` naming the problem."""
    data = _read(path)
    fmt = fmt or detect_format(path, data)
    if fmt not in FORMATS:
        raise ModelFileError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")
    checker = {"tflite": _check_tflite, "mnn": _check_mnn, "onnx": _check_onnx}[fmt]
    try:
        details = checker(data)
    except TensorTooLargeError as exc:
        raise ModelFileError(f"{path}: {exc} (a quarter of the memory limit; "
                             f"{MEMORY_ENV} sets it)") from None
    except FlatBufferError as exc:
        raise ModelFileError(f"{path}: not a valid {fmt} model: {exc}") from None
    return FileCheck(format=fmt, size=len(data), details=details)


def _check_tflite(data: bytes) -> Dict[str, object]:
    s = read_tflite(data, max_tensor_bytes=tensor_budget())
    return {"op_counts": s.op_counts, "quantized": s.quantized, "signatures": s.signature_keys,
            "weight_bytes": s.weight_bytes, "sparse_tensors": s.sparse_tensors,
            "tensor_types": s.tensor_types}


def _check_mnn(data: bytes) -> Dict[str, object]:
    return read_mnn(data, max_tensor_bytes=tensor_budget())


def _check_onnx(data: bytes) -> Dict[str, object]:
    # A ModelProto starts with a protobuf field key; ir_version (1, varint) in
    # every exporter we know. Reject text, zip, HTML and flatbuffers early.
    first = data[0]
    wire_type, field_no = first & 7, first >> 3
    if wire_type not in (0, 2) or not 1 <= field_no <= 20:
        raise FlatBufferError(f"first byte 0x{first:02x} is not a protobuf field key: not ONNX")
    if data[:4] == b"PK\x03\x04":
        raise FlatBufferError(_ZIP_HINT)
    if data[:4] == b"\x89HDF" or data[:5] in (b"<html", b"<!DOC"):
        raise FlatBufferError("this is an archive or a web page, not an ONNX model")
    if len(data) >= 8 and data[4:8] == b"TFL3":
        raise FlatBufferError("this is a TFLite file, not ONNX")
    # the protobuf itself is parsed by the engine, which reports damage cleanly
    return {}
