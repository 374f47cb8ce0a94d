"""Structured channel pruning: physically remove output channels, and everything tied to them.

    from converters.pruning import prune_channels
    report = prune_channels(ir_model, keep=0.7)           # or table=<channel sparsity table>
    print(report.summary())     # "... 16.14 GFLOPs -> 11.01 GFLOPs"

Works on the graph *before* BatchNorm folding (the cleanup passes run first:
inlining, constant and shape folding, dead code), so BatchNorm entries are
removed with the channels they normalize. Dependencies (residual adds,
depthwise convs, concats, flattens into a classifier) come from
``analyze.analyze_channels``; what goes, from ``plan``; the rewrite from
``rewrite``. The report carries ``mask``: the (initializer, axis, positions)
to zero in the source to get the model the pruned one equals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from converters.pruning.analyze import ChannelAnalysis, analyze_channels
from converters.pruning.plan import PrunePlan, channel_table, plan_from_table, plan_keep_ratio
from converters.pruning.rewrite import mask_slices, remove_channels
from edgert.errors import InputError

__all__ = ["prune_channels", "plan_channels", "analyze_channels", "ChannelPruneReport",
           "CLEANUP_PASSES", "has_channel_entries"]

CLEANUP_PASSES = ("inline_functions", "fold_constants", "remove_dead", "fold_shapes")


@dataclass
class ChannelPruneReport:
    """What channel pruning removed, and the cost before and after."""

    layers: List[Dict[str, Any]] = field(default_factory=list)   # weight, op, before, after
    kept: Dict[str, List[str]] = field(default_factory=dict)      # weight -> why channels stayed
    removed_classes: int = 0
    params_before: int = 0
    params_after: int = 0
    flops_before: int = 0
    flops_after: int = 0
    mask: List[Any] = field(default_factory=list, repr=False)     # (name, axis, positions)
    table: Any = field(default=None, repr=False)                  # the channel table applied

    def summary(self) -> str:
        pruned = [l for l in self.layers if l["after"] < l["before"]]
        lines = [f"channel pruning: {self.removed_classes} channel(s) removed in "
                 f"{len(pruned)} layer(s); params {_count(self.params_before)} -> "
                 f"{_count(self.params_after)}; {_flops(self.flops_before)} -> "
                 f"{_flops(self.flops_after)}"]
        for weight, reasons in list(self.kept.items())[:6]:
            lines.append(f"  kept in {weight}: {reasons[0]}")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        return {"removed_classes": self.removed_classes, "layers": self.layers,
                "kept": self.kept, "params_before": self.params_before,
                "params_after": self.params_after, "flops_before": self.flops_before,
                "flops_after": self.flops_after}


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _flops(n: int) -> str:
    return f"{n / 1e9:.2f} GFLOPs" if n >= 1e8 else f"{n / 1e6:.2f} MFLOPs"


def has_channel_entries(table: Any) -> bool:
    return table is not None and any(e.pattern == "channel" for e in table.weights.values())


def _cost(model: Any):
    import onnx_ir as ir

    from converters.analysis import analyze

    a = analyze(ir.serde.serialize_model(model))
    return a.weight_bytes("fp32") // 4, a.total_flops


def _prepare(model: Any) -> ChannelAnalysis:
    from converters.passes import optimize

    optimize(model, list(CLEANUP_PASSES))
    return analyze_channels(model)


def _plan(ca: ChannelAnalysis, table: Any, keep: Any) -> PrunePlan:
    if (table is None) == (keep is None):
        raise InputError("channel pruning needs either a channel table or keep ratios")
    return plan_from_table(ca, table) if table is not None else plan_keep_ratio(ca, keep)


def plan_channels(model: Any, keep: Any = 0.7, source: str = "") -> Any:
    """A channel-pattern sparsity table for ``keep`` (a ratio, or {weight regex: ratio}).

    ``model`` (an onnx_ir.Model) is cleaned up in place but keeps all its channels.
    """
    ca = _prepare(model)
    return channel_table(ca, plan_keep_ratio(ca, keep), source)


def prune_channels(model: Any, table: Any = None, keep: Any = None,
                   cost: bool = True) -> ChannelPruneReport:
    """Remove channels from ``model`` (an onnx_ir.Model) in place; see the module docstring."""
    ca = _prepare(model)
    plan = _plan(ca, table, keep)
    report = ChannelPruneReport(kept=plan.kept_reasons, removed_classes=len(plan.removed),
                                table=channel_table(ca, plan))
    if cost:
        report.params_before, report.flops_before = _cost(model)
    report.mask = mask_slices(ca.graph, plan.removed)
    before = {w: int(p.weight.const_value.shape[p.out_axis]) for w, p in ca.by_weight.items()}
    remove_channels(model, ca.graph, plan.removed)
    for w, p in ca.by_weight.items():
        report.layers.append({"weight": w, "node": p.node, "op": p.op_type,
                              "before": before[w],
                              "after": int(p.weight.const_value.shape[p.out_axis])})
    if cost:
        report.params_after, report.flops_after = _cost(model)
    return report
