"""TensorRT calibration cache -> quantization table.

The cache is text: a header ``TRT-<version>-<Calibrator>`` (for example
``TRT-8601-EntropyCalibration2``), then one ``tensor name: <hex>`` line per
activation, the hex being the bits of a big-endian float32. Per TensorRT's
documentation that value is the tensor's scale (its dynamic range is
``scale * 127``); TensorRT quantizes symmetrically to int8, so every entry gets
zero point 0. Names are the network's tensor names, which for a network parsed
from ONNX are the ONNX tensor names.
"""
from __future__ import annotations

import os
import re
import struct
from typing import Union

from quant_tables.errors import TableError
from quant_tables.provenance import Provenance
from quant_tables.table import ActivationQuant, QuantTable

_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_HEX = re.compile(r"^[0-9a-fA-F]{1,8}$")


def hex_to_float(text: str) -> float:
    return struct.unpack(">f", bytes.fromhex(text.zfill(8)))[0]


def import_tensorrt(source: Union[str, "os.PathLike[str]"], text: str = None,
                    model=None) -> QuantTable:
    """A table from a calibration cache file (or its ``text``, ``source`` naming it).
    ``model`` is accepted for a uniform importer signature; names are checked later."""
    where = os.fspath(source)
    if text is None:
        if not os.path.isfile(where):
            raise TableError(f"{where}: no such calibration cache")
        with open(where, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TableError(f"{where}: not a text calibration cache (binary data)") from None
        prov = Provenance.for_file("tensorrt", where)
    else:
        prov = Provenance(producer="tensorrt", source=where)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise TableError(f"{where}: empty calibration cache")
    m = _HEADER.match(lines[0])
    if not m or "Calibration" not in m.group(2):
        raise TableError(f"{where}: line 1 is {lines[0][:60]!r}, not a TensorRT cache header "
                         f"like 'TRT-8601-EntropyCalibration2'")
    prov.method = f"TensorRT {m.group(2)} (TRT {m.group(1)})"
    table = QuantTable(provenance=prov)
    for lineno, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not _HEX.match(value):
            raise TableError(f"{where}: line {lineno} is {line[:80]!r}, expected 'name: hexfloat'")
        scale = hex_to_float(value)
        table.activations[name] = ActivationQuant(
            scale=scale, zero_point=0, dtype="int8", min=-127.0 * scale, max=127.0 * scale,
            source="tensorrt")
    return QuantTable.from_dict(table.to_dict(), where=where)
