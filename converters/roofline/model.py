"""Per-layer roofline bounds, the model's time bound, and its efficiency.

A layer that does F FLOPs and moves B bytes cannot finish faster than
max(F / peak, B / bandwidth): it is compute-bound when F / B (its arithmetic
intensity) is above the device's ridge point peak / bandwidth, memory-bound
below. Layers run one after another, so the model's bound is the sum of its
layers' bounds; efficiency = bound / measured latency (1.0 would be a perfect
engine on a perfect device; typical CPU engines reach 0.1-0.6).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from converters.analysis.cost import ModelAnalysis
from converters.roofline.devices import Roofs


@dataclass
class LayerBound:
    name: str
    op_type: str
    flops: int
    macs: int
    weight_bytes: int
    read_bytes: int
    write_bytes: int
    intensity: float          # FLOP / byte
    compute_s: float
    memory_s: float
    bound: str                # "compute" | "memory"
    share: float = 0.0        # of the model's bound time

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.read_bytes + self.write_bytes

    @property
    def bound_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def attainable_gflops(self) -> float:
        """Throughput the roofs allow this layer: min(peak, bandwidth * intensity)."""
        return self.flops / self.bound_s / 1e9 if self.bound_s > 0 else 0.0

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "op_type": self.op_type, "flops": self.flops,
                "macs": self.macs, "weight_bytes": self.weight_bytes,
                "read_bytes": self.read_bytes, "write_bytes": self.write_bytes,
                "intensity": self.intensity, "bound": self.bound,
                "compute_ms": self.compute_s * 1e3, "memory_ms": self.memory_s * 1e3,
                "bound_ms": self.bound_s * 1e3, "attainable_gflops": self.attainable_gflops,
                "share": self.share}


@dataclass
class RooflineReport:
    model: str
    roofs: Roofs
    precision: str
    peak_gflops: float
    layers: List[LayerBound]
    latency_ms: Optional[float] = None
    latency_source: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    @property
    def bound_ms(self) -> float:
        return sum(l.bound_s for l in self.layers) * 1e3

    @property
    def flops(self) -> int:
        return sum(l.flops for l in self.layers)

    @property
    def bytes(self) -> int:
        return sum(l.bytes for l in self.layers)

    @property
    def ridge(self) -> float:
        return self.peak_gflops / self.roofs.bandwidth_gbps

    @property
    def efficiency(self) -> Optional[float]:
        """Roofline bound / measured latency (None without a measured latency)."""
        if not self.latency_ms:
            return None
        return self.bound_ms / self.latency_ms

    @property
    def attained_gflops(self) -> Optional[float]:
        if not self.latency_ms:
            return None
        return self.flops / (self.latency_ms / 1e3) / 1e9

    def time_share(self, bound: str) -> float:
        """Share of the bound time spent in ``"memory"`` or ``"compute"``-bound layers."""
        return sum(l.share for l in self.layers if l.bound == bound)

    def to_dict(self) -> Dict[str, object]:
        return {
            "model": self.model, "precision": self.precision, "device": self.roofs.to_dict(),
            "peak_gflops": self.peak_gflops, "bandwidth_gbps": self.roofs.bandwidth_gbps,
            "ridge_flop_per_byte": self.ridge,
            "totals": {"flops": self.flops, "macs": sum(l.macs for l in self.layers),
                       "bytes": self.bytes, "bound_ms": self.bound_ms,
                       "memory_bound_share": self.time_share("memory"),
                       "compute_bound_share": self.time_share("compute"),
                       "latency_ms": self.latency_ms, "latency_source": self.latency_source,
                       "efficiency": self.efficiency, "attained_gflops": self.attained_gflops},
            "notes": list(self.notes),
            "layers": [l.to_dict() for l in self.layers],
        }


def roofline(analysis: ModelAnalysis, roofs: Roofs, precision: str = "fp32",
             latency_ms: Optional[float] = None,
             latency_source: Optional[str] = None) -> RooflineReport:
    """Place every layer of ``analysis`` against ``roofs`` at storage ``precision``."""
    peak, notes = roofs.peak(precision)
    flops_per_s = peak * 1e9
    bytes_per_s = roofs.bandwidth_gbps * 1e9
    layers: List[LayerBound] = []
    for l in analysis.layers:
        w, r, o = l.weight_bytes(precision), l.read_bytes(precision), l.write_bytes(precision)
        compute_s = l.flops / flops_per_s
        memory_s = (w + r + o) / bytes_per_s
        layers.append(LayerBound(
            name=l.name, op_type=l.op_type, flops=l.flops, macs=l.macs, weight_bytes=w,
            read_bytes=r, write_bytes=o, intensity=l.intensity(precision),
            compute_s=compute_s, memory_s=memory_s,
            bound="compute" if compute_s > memory_s else "memory"))
    total = sum(l.bound_s for l in layers)
    for l in layers:
        l.share = l.bound_s / total if total else 0.0
    if latency_ms is not None and latency_ms <= 0:
        raise ValueError(f"measured latency must be positive, got {latency_ms} ms")
    return RooflineReport(model=analysis.model, roofs=roofs, precision=precision,
                          peak_gflops=peak, layers=layers, latency_ms=latency_ms,
                          latency_source=latency_source, notes=notes + list(analysis.notes))
