"""Qualcomm AIMET encodings JSON -> quantization table.

Two layouts exist (AIMET's "quantization encoding specification"):

* up to 0.6.x: ``{"activation_encodings": {name: [Encoding, ...]}, "param_encodings":
  {...}}``, one Encoding per channel, keys ``bitwidth``, ``is_symmetric`` ("True"/
  "False" strings), ``offset``, ``scale``, ``min``, ``max``, ``dtype`` ("int"/"float");
* 1.0.0: ``{"version": "1.0.0", "activation_encodings": [{"name", "dtype": "INT"|
  "FLOAT", "enc_type": "PER_TENSOR"|"PER_CHANNEL"|..., "bw", "is_sym", "scale": [...],
  "offset": [...]}], "param_encodings": [...]}``.

AIMET's convention is ``real = scale * (q + offset)`` with ``q`` in ``[0, 2^bw - 1]``,
so the unsigned zero point is ``-offset``; symmetric encodings (offset
``-2^(bw-1)``) become signed types with zero point 0. Float encodings (AIMET's
fp16 simulation) become "keep in float" overrides. Per-channel axes are not in
the legacy files: they come from the ONNX model when given, else axis 0 (the
output channels of Conv and Gemm weights).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from quant_tables.errors import TableError
from quant_tables.provenance import Provenance
from quant_tables.table import ActivationQuant, LayerOverride, QuantTable, WeightQuant, read_json


def _container(bits: int, signed: bool) -> str:
    for width in (4, 8, 16, 32):
        if bits <= width:
            if width == 32:
                return "int32"
            return ("int" if signed else "uint") + str(width)
    raise TableError(f"bitwidth {bits} is wider than 32")


def _truthy(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() == "true"


def _normalize(entries: List[Dict[str, Any]], name: str, where: str) -> Dict[str, Any]:
    """One AIMET tensor (legacy list of per-channel dicts, or a 1.0.0 entry) -> common form."""
    if not entries:
        raise TableError(f"{where}: tensor {name!r} has an empty encoding list")
    first = entries[0]
    dtype = str(first.get("dtype", "int")).lower()
    bits = int(first.get("bitwidth", first.get("bw", 8)))
    sym = _truthy(first.get("is_symmetric", first.get("is_sym", False)))
    enc_type = str(first.get("enc_type", "PER_CHANNEL" if len(entries) > 1 else "PER_TENSOR"))
    if "scale" in first and isinstance(first["scale"], list):  # 1.0.0: lists inside one entry
        scales, offsets = first["scale"], first.get("offset", [0] * len(first["scale"]))
        mins = maxs = None
    else:
        scales = [e.get("scale") for e in entries]
        offsets = [e.get("offset", 0) for e in entries]
        mins, maxs = [e.get("min") for e in entries], [e.get("max") for e in entries]
    if dtype != "float" and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                    for v in scales):
        raise TableError(f"{where}: tensor {name!r} has a missing or non-numeric scale {scales!r}")
    return {"dtype": dtype, "bits": bits, "symmetric": sym, "enc_type": enc_type.upper(),
            "scale": scales, "offset": offsets, "min": mins, "max": maxs,
            "axis": first.get("axis")}


def _zero_points(enc: Dict[str, Any], name: str, where: str):
    bits, offsets = enc["bits"], enc["offset"]
    try:
        offs = [int(round(float(o))) for o in offsets]
    except (TypeError, ValueError):
        raise TableError(f"{where}: tensor {name!r} has a non-numeric offset {offsets!r}") from None
    half = 1 << (bits - 1)
    if enc["symmetric"] and all(o == -half for o in offs):
        return _container(bits, True), [0] * len(offs)
    return _container(bits, False), [-o for o in offs]


def _entries(section: Any, where: str, kind: str) -> Dict[str, List[Dict[str, Any]]]:
    if section is None:
        return {}
    if isinstance(section, dict):  # legacy: name -> [Encoding, ...]
        return {k: (v if isinstance(v, list) else [v]) for k, v in section.items()}
    if isinstance(section, list):  # 1.0.0: [{"name": ..., ...}]
        out = {}
        for i, e in enumerate(section):
            if not isinstance(e, dict) or "name" not in e:
                raise TableError(f"{where}: {kind}[{i}] has no 'name'")
            out[e["name"]] = [e]
        return out
    raise TableError(f"{where}: {kind} must be an object or a list, got {type(section).__name__}")


def import_aimet(source: Any, model: Any = None, where: Optional[str] = None) -> QuantTable:
    """A table from AIMET encodings (a path or the parsed dict). ``model``: the ONNX graph,
    used for per-channel axes."""
    if isinstance(source, (str, os.PathLike)):
        where = where or os.fspath(source)
        doc = read_json(os.fspath(source))
        prov = Provenance.for_file("aimet", os.fspath(source))
    else:
        doc, where = source, where or "AIMET encodings"
        prov = Provenance(producer="aimet", source=where)
    if not isinstance(doc, dict) or not ({"activation_encodings", "param_encodings"} & set(doc)):
        raise TableError(f"{where}: not AIMET encodings (no activation_encodings/param_encodings)")
    version = str(doc.get("version", "0.4.0"))
    if version.split(".")[0] not in ("0", "1"):
        raise TableError(f"{where}: AIMET encodings version {version} is not supported "
                         f"(supported: up to 0.6.x and 1.0.0)")
    prov.method = f"AIMET encodings {version}"
    if doc.get("quantizer_args"):
        prov.details["quantizer_args"] = doc["quantizer_args"]
    axes = _weight_axes(model)
    table = QuantTable(provenance=prov)
    for name, entries in _entries(doc.get("activation_encodings"), where, "activation_encodings").items():
        _add_activation(table, name, _normalize(entries, name, where), where)
    for name, entries in _entries(doc.get("param_encodings"), where, "param_encodings").items():
        _add_param(table, name, _normalize(entries, name, where), axes, where)
    for layer in doc.get("excluded_layers", []) or []:
        table.overrides.append(LayerOverride(node=str(layer), reason="excluded in AIMET"))
    return QuantTable.from_dict(table.to_dict(), where=where)


def _weight_axes(model: Any) -> Dict[str, int]:
    if model is None:
        return {}
    from quant_tables.layer_weights import layer_weights
    from quant_tables.onnx_tensors import load_model

    return {lw.name: lw.axis for lw in layer_weights(load_model(model))}


def _check_kind(enc: Dict[str, Any], name: str, where: str) -> bool:
    if enc["dtype"] == "float":
        return False
    if enc["enc_type"] not in ("PER_TENSOR", "PER_CHANNEL"):
        raise TableError(f"{where}: tensor {name!r} uses {enc['enc_type']} encodings; the table "
                         f"holds per-tensor and per-channel quantization only")
    return True


def _add_activation(table: QuantTable, name: str, enc: Dict[str, Any], where: str) -> None:
    if not _check_kind(enc, name, where):
        table.overrides.append(LayerOverride(tensor=name, reason=f"AIMET float{enc['bits']}"))
        return
    if len(enc["scale"]) != 1:
        raise TableError(f"{where}: activation {name!r} has {len(enc['scale'])} encodings; "
                         f"per-channel activations are not supported")
    dtype, zps = _zero_points(enc, name, where)
    lo = enc["min"][0] if enc["min"] else None
    hi = enc["max"][0] if enc["max"] else None
    table.activations[name] = ActivationQuant(
        scale=enc["scale"][0], zero_point=zps[0], dtype=dtype,
        bits=enc["bits"] if enc["bits"] not in (4, 8, 16, 32) else None,
        min=lo, max=hi, source="aimet")


def _add_param(table: QuantTable, name: str, enc: Dict[str, Any], axes: Dict[str, int],
               where: str) -> None:
    if not _check_kind(enc, name, where):
        return  # AIMET keeps this parameter in float: nothing to quantize
    dtype, zps = _zero_points(enc, name, where)
    per_channel = len(enc["scale"]) > 1 or enc["enc_type"] == "PER_CHANNEL"
    axis = enc["axis"] if enc["axis"] is not None else axes.get(name, 0)
    table.weights[name] = WeightQuant(
        scale=enc["scale"], zero_point=zps, axis=axis if per_channel else None, dtype=dtype,
        bits=enc["bits"] if enc["bits"] not in (4, 8, 16, 32) else None,
        symmetric=enc["symmetric"], source="aimet")
