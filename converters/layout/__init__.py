"""NCHW -> NHWC layout propagation for channel-last targets (TFLite).

A small package in the shape of litert-torch's layout pass rather than one
function: ``perm`` (permutation algebra), ``check`` (per-op rules: which layouts
an op takes and gives), ``mark`` (the two-pass planner that fixes every value's
stored layout) and ``rewrite`` (how Reshape-like ops, pads and flatten->FC are
rewritten under a layout). The planner never edits the graph: it returns a
``LayoutPlan`` that a backend's lowerings read, and says how many TRANSPOSE ops
the plan costs.

    plan = plan_layout(model.graph, io_layout="source")
    plan.perm(value), plan.required_perm(node, 0), plan.transpose_count()
"""
from __future__ import annotations

from converters.layout.mark import IO_LAYOUTS, LayoutPlan, plan_layout
from converters.layout.perm import Perm, channel_last, identity

__all__ = ["IO_LAYOUTS", "LayoutPlan", "Perm", "channel_last", "identity", "plan_layout"]
