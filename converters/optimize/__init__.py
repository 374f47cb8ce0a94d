"""Hardware-aware compression to a latency budget (``edgert optimize``, docs/OPTIMIZE.md).

Per unit of the graph (``units``) a precision, a channel keep ratio and a block
sparsity (``space``); candidates built with the converters (``build``), scored by
edgert's runtime on the host (``evaluate``), timed on the device by a meter
(``meter``; the device farm's is ``device_farm.latency_meter``); a per-unit latency
table measured on the device (``latency``) and a knapsack over the units
(``knapsack``) give the predicted front; ``search``/``phases`` run it, ``state``
keeps it resumable, ``report`` writes the plot and the tables.
"""
from __future__ import annotations

from converters.optimize.goal import Goal, parse_speedup
from converters.optimize.meter import HostMeter, MeterError
from converters.optimize.space import Candidate, Option, SpaceSpec


def optimize(*args, **kwargs):
    """``converters.optimize.api.optimize`` (imported when called)."""
    from converters.optimize.api import optimize as _optimize

    return _optimize(*args, **kwargs)


__all__ = ["optimize", "Goal", "parse_speedup", "SpaceSpec", "Option", "Candidate",
           "HostMeter", "MeterError"]
