"""What a layer costs: FLOPs, MACs and the tensors it reads and writes.

Bytes are not stored per precision; each layer keeps the tensors it touches
(elements, dtype, role) and prices them for a storage precision on demand:
float tensors take the precision's width (fp32 4, fp16 2, int8 1 byte), int8
biases stay int32 (what every int8 kernel stores), and non-float tensors
(indices, shapes, already-quantized data) keep their own width.

Conventions (docs/ROOFLINE.md): one MAC is two FLOPs; MACs count only
multiply-accumulates of convolutions, matrix products and attention; weights are
read once per inference by each layer that uses them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

PRECISIONS = ("fp32", "fp16", "int8")
_FLOAT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
ROLES = ("weight", "bias", "input", "output")


def element_bytes(dtype: np.dtype, role: str, precision: str) -> int:
    """Bytes per element of a tensor of ``dtype`` stored at ``precision``."""
    if precision not in _FLOAT_BYTES:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return dtype.itemsize
    if role == "bias" and precision == "int8":
        return 4
    return _FLOAT_BYTES[precision]


@dataclass(frozen=True)
class Traffic:
    """One tensor a layer moves: ``elements`` of ``dtype`` in ``role``."""

    tensor: str
    role: str
    elements: int
    dtype: str

    def bytes(self, precision: str) -> int:
        return self.elements * element_bytes(np.dtype(self.dtype), self.role, precision)


@dataclass
class OpCost:
    """What an op-family module returns for one node.

    ``bias_inputs``: input indices stored as int32 under int8. ``reads``: input
    index -> elements actually read, where an op reads less than the whole input
    (Slice, Gather). ``free``: a view or metadata op (Reshape, Shape) that moves
    no data in any engine.
    """

    flops: int = 0
    macs: int = 0
    bias_inputs: Tuple[int, ...] = ()
    reads: Dict[int, int] = field(default_factory=dict)
    free: bool = False
    notes: List[str] = field(default_factory=list)


@dataclass
class LayerCost:
    """One layer: a node, or a compute node with the activations fused into it."""

    name: str
    op_type: str
    flops: int
    macs: int
    traffic: List[Traffic]
    nodes: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def _sum(self, roles: Iterable[str], precision: str) -> int:
        roles = set(roles)
        return sum(t.bytes(precision) for t in self.traffic if t.role in roles)

    def weight_bytes(self, precision: str = "fp32") -> int:
        return self._sum(("weight", "bias"), precision)

    def read_bytes(self, precision: str = "fp32") -> int:
        """Activation bytes read (weights not included)."""
        return self._sum(("input",), precision)

    def write_bytes(self, precision: str = "fp32") -> int:
        return self._sum(("output",), precision)

    def bytes(self, precision: str = "fp32") -> int:
        """Everything the layer moves: weights + activations read + written."""
        return self._sum(ROLES, precision)

    def intensity(self, precision: str = "fp32") -> float:
        """FLOPs per byte moved (0 for a layer that moves nothing)."""
        b = self.bytes(precision)
        return self.flops / b if b else 0.0

    def to_dict(self, precisions: Sequence[str] = PRECISIONS) -> Dict[str, object]:
        return {
            "name": self.name, "op_type": self.op_type, "nodes": list(self.nodes),
            "flops": self.flops, "macs": self.macs,
            "weight_bytes": {p: self.weight_bytes(p) for p in precisions},
            "read_bytes": {p: self.read_bytes(p) for p in precisions},
            "write_bytes": {p: self.write_bytes(p) for p in precisions},
            "intensity": {p: self.intensity(p) for p in precisions},
            "notes": list(self.notes),
        }


@dataclass
class ModelAnalysis:
    """Every layer of a model and the totals."""

    model: str
    layers: List[LayerCost]
    input_shapes: Dict[str, Tuple[int, ...]]
    weights: List[Traffic]          # every distinct weight tensor once (model storage)
    notes: List[str] = field(default_factory=list)
    uncounted_ops: Dict[str, int] = field(default_factory=dict)  # op -> nodes, memory only

    @property
    def total_flops(self) -> int:
        return sum(l.flops for l in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(l.macs for l in self.layers)

    def weight_bytes(self, precision: str = "fp32") -> int:
        """Model storage: each distinct weight tensor counted once."""
        return sum(t.bytes(precision) for t in self.weights)

    def traffic_bytes(self, precision: str = "fp32") -> int:
        """Bytes moved by all layers in one inference (weights re-read where shared)."""
        return sum(l.bytes(precision) for l in self.layers)

    def intensity(self, precision: str = "fp32") -> float:
        b = self.traffic_bytes(precision)
        return self.total_flops / b if b else 0.0

    def layer(self, name: str) -> LayerCost:
        for l in self.layers:
            if l.name == name or name in l.nodes:
                return l
        raise KeyError(name)

    def to_dict(self, precisions: Sequence[str] = PRECISIONS) -> Dict[str, object]:
        return {
            "model": self.model,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "totals": {
                "flops": self.total_flops, "macs": self.total_macs, "layers": len(self.layers),
                "weight_bytes": {p: self.weight_bytes(p) for p in precisions},
                "traffic_bytes": {p: self.traffic_bytes(p) for p in precisions},
                "intensity": {p: self.intensity(p) for p in precisions},
            },
            "uncounted_ops": dict(self.uncounted_ops),
            "notes": list(self.notes),
            "layers": [l.to_dict(precisions) for l in self.layers],
        }


def prod(values: Iterable[int]) -> int:
    """Product of ints (1 for none), as a Python int so totals never overflow."""
    out = 1
    for v in values:
        out *= int(v)
    return out


def numel(shape: Optional[Sequence[int]]) -> Optional[int]:
    return None if shape is None else prod(shape)
