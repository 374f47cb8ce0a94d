"""The quantization table: per activation tensor and per weight, how it is quantized.

The table is keyed by ONNX tensor names (the names of the graph edgert converts),
so the same table drives the TFLite writer and MNN's compression params. It is a
plain data model: loading validates (schema + semantic checks, see
``validate.py``) so every consumer can trust what it holds. The file format is
described in ``SCHEMA.md`` and ``schema/quant_table.schema.json``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from quant_tables.errors import TableError
from quant_tables.provenance import Provenance
from quant_tables.qparams import INT_DTYPES, dtype_range

FORMAT = "edgert.quant-table"
VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]


def _extras(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if k.startswith("x-")}


@dataclass
class ActivationQuant:
    """Per-tensor affine quantization of an activation (or graph input/output)."""

    scale: float
    zero_point: int
    dtype: str = "int8"
    bits: Optional[int] = None          # None: the dtype's width
    quant_min: Optional[int] = None     # None: the whole range of ``bits``
    quant_max: Optional[int] = None
    min: Optional[float] = None         # observed range, informational
    max: Optional[float] = None
    source: Optional[str] = None        # "qat", "calibration:entropy", "propagated:<tensor>"...
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def qrange(self) -> Tuple[int, int]:
        lo, hi = dtype_range(self.dtype, self.bits)
        return (lo if self.quant_min is None else self.quant_min,
                hi if self.quant_max is None else self.quant_max)

    @property
    def real_range(self) -> Tuple[float, float]:
        """The float range the integer range can represent."""
        lo, hi = self.qrange
        return (self.scale * (lo - self.zero_point), self.scale * (hi - self.zero_point))

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"scale": float(self.scale), "zero_point": int(self.zero_point),
                             "dtype": self.dtype}
        for k in ("bits", "quant_min", "quant_max"):
            if getattr(self, k) is not None:
                d[k] = int(getattr(self, k))
        for k in ("min", "max"):
            if getattr(self, k) is not None:
                d[k] = float(getattr(self, k))
        if self.source:
            d["source"] = self.source
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ActivationQuant":
        return cls(scale=float(d["scale"]), zero_point=int(d["zero_point"]),
                   dtype=d.get("dtype", "int8"), bits=d.get("bits"),
                   quant_min=d.get("quant_min"), quant_max=d.get("quant_max"),
                   min=d.get("min"), max=d.get("max"), source=d.get("source"),
                   extra=_extras(d))


@dataclass
class WeightQuant:
    """Per-tensor (``axis`` None, one scale) or per-channel (``axis`` set) weight quantization.

    Scales describe the weight as it is deployed: after BatchNorm folding when the
    converter folds a BatchNorm into the layer (QAT's fused Conv+BN modules quantize
    exactly that folded weight). ``axis`` counts in the ONNX weight layout
    (Conv: 0 = output channels; ConvTranspose: 1; MatMul [K, N]: 1).
    """

    scale: Tuple[float, ...]
    zero_point: Tuple[int, ...]
    axis: Optional[int] = None
    dtype: str = "int8"
    bits: Optional[int] = None
    quant_min: Optional[int] = None
    quant_max: Optional[int] = None
    symmetric: Optional[bool] = None
    source: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scale = tuple(float(s) for s in np.atleast_1d(self.scale))
        zp = tuple(int(z) for z in np.atleast_1d(self.zero_point))
        if len(zp) == 1 and len(self.scale) > 1:
            zp = zp * len(self.scale)
        self.zero_point = zp

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def qrange(self) -> Tuple[int, int]:
        lo, hi = dtype_range(self.dtype, self.bits)
        return (lo if self.quant_min is None else self.quant_min,
                hi if self.quant_max is None else self.quant_max)

    def scales_for(self, channels: int) -> np.ndarray:
        """Scales as one value per channel (a per-tensor scale repeated)."""
        s = np.asarray(self.scale, dtype=np.float64)
        return np.repeat(s, channels) if s.size == 1 else s

    def to_dict(self) -> Dict[str, Any]:
        one = len(self.scale) == 1 and self.axis is None
        d: Dict[str, Any] = {
            "scale": self.scale[0] if one else list(self.scale),
            "zero_point": self.zero_point[0] if one or len(set(self.zero_point)) == 1
            else list(self.zero_point),
            "axis": self.axis, "dtype": self.dtype}
        for k in ("bits", "quant_min", "quant_max"):
            if getattr(self, k) is not None:
                d[k] = int(getattr(self, k))
        if self.symmetric is not None:
            d["symmetric"] = bool(self.symmetric)
        if self.source:
            d["source"] = self.source
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "WeightQuant":
        return cls(scale=d["scale"], zero_point=d["zero_point"], axis=d.get("axis"),
                   dtype=d.get("dtype", "int8"), bits=d.get("bits"),
                   quant_min=d.get("quant_min"), quant_max=d.get("quant_max"),
                   symmetric=d.get("symmetric"), source=d.get("source"), extra=_extras(d))


@dataclass
class LayerOverride:
    """Keep a layer in float: matched by node name, by an output tensor name, or by op type."""

    precision: str = "float"
    node: Optional[str] = None
    tensor: Optional[str] = None
    op_type: Optional[str] = None
    reason: Optional[str] = None

    def matches(self, node_name: str, op_type: str, outputs: Sequence[str]) -> bool:
        if self.node is not None:
            return node_name == self.node
        if self.tensor is not None:
            return self.tensor in outputs
        return op_type == self.op_type

    def describe(self) -> str:
        what = (f"node {self.node!r}" if self.node is not None else
                f"tensor {self.tensor!r}" if self.tensor is not None else f"op type {self.op_type}")
        return what + (f" ({self.reason})" if self.reason else "")

    def to_dict(self) -> Dict[str, Any]:
        d = {"precision": self.precision}
        for k in ("node", "tensor", "op_type", "reason"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LayerOverride":
        return cls(precision=d.get("precision", "float"), node=d.get("node"),
                   tensor=d.get("tensor"), op_type=d.get("op_type"), reason=d.get("reason"))


@dataclass
class QuantTable:
    """Activations and weights by ONNX tensor name, float overrides, provenance."""

    activations: Dict[str, ActivationQuant] = field(default_factory=dict)
    weights: Dict[str, WeightQuant] = field(default_factory=dict)
    overrides: List[LayerOverride] = field(default_factory=list)
    provenance: Provenance = field(default_factory=Provenance)
    extra: Dict[str, Any] = field(default_factory=dict)

    # ---- serialization -------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "format": FORMAT, "version": VERSION,
            "provenance": self.provenance.to_dict(),
            "activations": {k: v.to_dict() for k, v in sorted(self.activations.items())},
            "weights": {k: v.to_dict() for k, v in sorted(self.weights.items())},
        }
        if self.overrides:
            d["overrides"] = [o.to_dict() for o in self.overrides]
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: str = "table") -> "QuantTable":
        """Validate ``d`` (schema and semantics) and build the table; TableError if invalid."""
        from quant_tables.validate import validate_quant_dict
        validate_quant_dict(d, where)
        return cls(activations={k: ActivationQuant.from_dict(v) for k, v in d["activations"].items()},
                   weights={k: WeightQuant.from_dict(v) for k, v in d["weights"].items()},
                   overrides=[LayerOverride.from_dict(o) for o in d.get("overrides", [])],
                   provenance=Provenance.from_dict(d.get("provenance", {})),
                   extra=_extras(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save(self, path: PathLike) -> None:
        """Validate, then write atomically (a table is never left half-written)."""
        d = self.to_dict()
        from quant_tables.validate import validate_quant_dict
        validate_quant_dict(d, os.fspath(path))
        _write_atomic(os.fspath(path), json.dumps(d, indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: PathLike) -> "QuantTable":
        path = os.fspath(path)
        return cls.from_dict(read_json(path), where=path)

    # ---- queries ---------------------------------------------------------
    def tensor_names(self) -> List[str]:
        return sorted(set(self.activations) | set(self.weights))

    def missing(self, activation_names: Iterable[str]) -> List[str]:
        """Names the graph needs that this table lacks (in the order given)."""
        return [n for n in activation_names if n not in self.activations]

    def float_override(self, node_name: str, op_type: str,
                       outputs: Sequence[str]) -> Optional[LayerOverride]:
        for o in self.overrides:
            if o.precision == "float" and o.matches(node_name, op_type, outputs):
                return o
        return None

    def merged(self, other: "QuantTable") -> "QuantTable":
        """A copy of this table with the entries only ``other`` has added (ours win)."""
        acts = dict(other.activations)
        acts.update(self.activations)
        weights = dict(other.weights)
        weights.update(self.weights)
        prov = Provenance(**vars(self.provenance))
        prov.details = dict(prov.details)
        added = sorted(set(acts) - set(self.activations)) + sorted(set(weights) - set(self.weights))
        if added:
            prov.details["filled_by"] = {"producer": other.provenance.producer,
                                         "method": other.provenance.method, "count": len(added)}
        return QuantTable(acts, weights, list(self.overrides), prov, dict(self.extra))

    def summary(self) -> Dict[str, Any]:
        dt: Dict[str, int] = {}
        for a in self.activations.values():
            dt[a.dtype] = dt.get(a.dtype, 0) + 1
        return {"activations": len(self.activations), "weights": len(self.weights),
                "per_channel_weights": sum(1 for w in self.weights.values() if w.per_channel),
                "overrides": len(self.overrides), "activation_dtypes": dt,
                "producer": self.provenance.producer, "method": self.provenance.method,
                "created": self.provenance.created, "source": self.provenance.source}


def read_json(path: str) -> Dict[str, Any]:
    """A JSON object from ``path``; TableError (with the line) when it is not one."""
    if not os.path.isfile(path):
        raise TableError(f"{path}: no such table file")
    try:
        with open(path, "r", encoding="utf-8") as f:
            d = json.load(f, parse_constant=_keep_nan)
    except UnicodeDecodeError:
        raise TableError(f"{path}: not a text (UTF-8 JSON) file") from None
    except json.JSONDecodeError as exc:
        raise TableError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    if not isinstance(d, dict):
        raise TableError(f"{path}: a table is a JSON object, got {type(d).__name__}")
    return d


def _keep_nan(token: str) -> float:
    # Python's json reads NaN/Infinity; keep them so validation can name the tensor.
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[token]


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def known_dtype(name: str) -> bool:
    return name in INT_DTYPES
