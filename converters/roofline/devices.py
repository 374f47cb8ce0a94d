"""Device roofs: peak throughput per precision and memory bandwidth.

From three places, one shape: the sourced data file ``devices.json`` (datasheet
figures), a JSON written by ``edgert roofs --json`` on some device (measured
roofs, e.g. collected by the device farm), or a measurement on this host now.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from edgert.errors import EdgertError, InputError

DEVICES_FILE = os.path.join(os.path.dirname(__file__), "devices.json")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class Roofs:
    """One device's roofs. ``peak_gflops[p]`` is GFLOP/s (GOP/s for int8) or None."""

    name: str
    title: str
    peak_gflops: Dict[str, Optional[float]]
    bandwidth_gbps: float
    sources: Dict[str, str] = field(default_factory=dict)
    measured: bool = False
    unit: str = "cpu"

    def peak(self, precision: str) -> Tuple[float, List[str]]:
        """The compute roof for ``precision`` and notes on any stand-in used.

        With no figure for fp16 or int8, the fp32 roof stands in (a CPU with no
        faster kernels computes them in fp32 anyway), and a note says so."""
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
        value = self.peak_gflops.get(precision)
        if value:
            return float(value), []
        fp32 = self.peak_gflops.get("fp32")
        if not fp32:
            raise EdgertError(f"device {self.name!r} has no sourced {precision} or fp32 peak: "
                              "measure it on the device with `edgert roofs --json` and pass "
                              "that file as --device")
        return float(fp32), [f"{self.name} has no {precision} roof: the fp32 roof stands in"]

    def ridge(self, precision: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the memory roof meets the compute roof."""
        return self.peak(precision)[0] / self.bandwidth_gbps

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "title": self.title, "unit": self.unit,
                "measured": self.measured, "peak_gflops": dict(self.peak_gflops),
                "bandwidth_gbps": self.bandwidth_gbps, "sources": dict(self.sources)}


def roofs_from_dict(name: str, entry: Dict[str, object]) -> Roofs:
    """A ``Roofs`` from a devices.json entry or an ``edgert roofs --json`` result."""
    try:
        peaks: Dict[str, Optional[float]] = {}
        sources: Dict[str, str] = {}
        for p in PRECISIONS:
            fig = (entry.get("peak_gflops") or {}).get(p)
            peaks[p] = float(fig["value"]) if fig else None
            if fig:
                sources[p] = _source(fig)
        bw = entry["bandwidth_gbps"]
        sources["bandwidth"] = _source(bw)
        return Roofs(name=str(entry.get("name", name)), title=str(entry.get("title", name)),
                     peak_gflops=peaks, bandwidth_gbps=float(bw["value"]), sources=sources,
                     measured=bool(entry.get("measured", False)),
                     unit=str(entry.get("unit", "cpu")))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"device {name!r}: not a roofs entry (need peak_gflops.<precision>.value "
                         f"and bandwidth_gbps.value): {exc}") from None


def _source(fig: Dict[str, object]) -> str:
    basis = fig.get("basis")
    return f"{fig.get('source', '')}" + (f" [{basis}]" if basis else "")


def _catalog() -> Dict[str, Dict[str, object]]:
    with open(DEVICES_FILE) as f:
        return json.load(f)["devices"]


def device_names() -> List[str]:
    """Devices in devices.json."""
    return list(_catalog())


def get_roofs(device: str, measure_seconds: float = 3.0) -> Roofs:
    """Roofs of ``device``: a name from devices.json, ``"host"`` (measured now), or the
    path of a JSON file written by ``edgert roofs --json``."""
    if device == "host":
        from edgert.microbench import measure_roofs
        return roofs_from_dict("host", measure_roofs(seconds=measure_seconds))
    if device.endswith(".json") or os.path.sep in device:
        if not os.path.exists(device):
            raise InputError(f"{device}: no such roofs file")
        try:
            with open(device) as f:
                entry = json.load(f)
        except (OSError, ValueError) as exc:
            raise InputError(f"{device}: not a JSON roofs file ({exc})") from None
        return roofs_from_dict(os.path.splitext(os.path.basename(device))[0], entry)
    catalog = _catalog()
    if device not in catalog:
        raise InputError(f"unknown device {device!r}; known: host, {', '.join(catalog)}, "
                         "or a roofs JSON file from `edgert roofs --json`")
    entry = dict(catalog[device])
    entry.setdefault("name", device)
    return roofs_from_dict(device, entry)
