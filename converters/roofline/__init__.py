"""The roofline model: a model's layers (``converters.analysis``) against a
device's roofs (``devices.json`` or measured by ``edgert.microbench``).

    from converters.roofline import roofline, get_roofs
    report = roofline(analysis, get_roofs("raspberry-pi-5"), precision="fp32", latency_ms=41.0)
    report.bound_ms, report.efficiency, report.layers[0].bound
"""
from __future__ import annotations

from typing import Any

__all__ = ["roofline", "get_roofs", "device_names", "Roofs", "RooflineReport"]


def __getattr__(name: str) -> Any:  # PEP 562
    if name in ("get_roofs", "device_names", "Roofs", "roofs_from_dict"):
        from converters.roofline import devices
        return getattr(devices, name)
    if name in ("roofline", "RooflineReport", "LayerBound"):
        from converters.roofline import model
        return getattr(model, name)
    raise AttributeError(f"module 'converters.roofline' has no attribute {name!r}")
