"""The report's charts, drawn from the same cells as its tables.

* per model, the latency distribution of every cell: one horizontal box per
  (device, variant) — box the middle half, whiskers 5th to 95th percentile,
  dots the runs beyond, a line at the median (the table's number). Cells whose
  tool printed only a summary get a diamond at its mean and a line from min to
  max; failed cells say so in place. Labels sit on the axis, so there is no
  legend to cover a box.
* for a comparison, each place's ratio new/base with its confidence interval.

Charts are 9 inches wide (the page's width at 100 %) and grow in height with
their rows. Each drawing function returns, per cell id, the value it actually
drew, read back from the drawn artists: the report checks it against the table.
"""
from __future__ import annotations

import io
import math
from typing import Dict, List, Sequence, Tuple

from device_farm.report.cells import Cell
from device_farm.report.stats import Change

WIDTH_IN = 9.0
ROW_IN = 0.34
DPI = 110
_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3",
            "#8C8C8C", "#CCB974", "#64B5CD")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def colors(variants: Sequence[str]) -> Dict[str, str]:
    return {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(dict.fromkeys(variants))}


def distribution_chart(model: str, cells: Sequence[Cell],
                       palette: Dict[str, str]) -> Tuple[bytes, Dict[str, float]]:
    """PNG bytes and {cell id: value drawn} of one model's cells."""
    plt = _plt()
    rows = sorted(cells, key=lambda c: (c.device, list(palette).index(c.variant)
                                        if c.variant in palette else 0))
    height = max(1.8, ROW_IN * len(rows) + 1.1)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
    y = list(range(len(rows)))[::-1]
    drawn: Dict[str, float] = {}
    with_lat = [(yy, c) for yy, c in zip(y, rows) if len(c.latencies) >= 2]
    if with_lat:
        bp = _hboxplot(ax, [c.latencies for _, c in with_lat], [yy for yy, _ in with_lat])
        for patch, (_, c) in zip(bp["boxes"], with_lat):
            patch.set_facecolor(palette.get(c.variant, _PALETTE[0]))
            patch.set_alpha(0.75)
        for line, (_, c) in zip(bp["medians"], with_lat):
            drawn[c.id] = float(line.get_xdata()[0])
    values = [v for c in rows for v in (c.latencies or [c.metrics.get("min_ms"),
                                                          c.metrics.get("max_ms"), c.value_ms])
              if v]
    lo = min(values) if values else 1.0
    for yy, c in zip(y, rows):
        if len(c.latencies) >= 2:
            continue
        if c.value_ms is not None:
            mn = c.metrics.get("min_ms") or c.value_ms
            mx = c.metrics.get("max_ms") or c.value_ms
            ax.plot([mn, mx], [yy, yy], color=palette.get(c.variant, _PALETTE[0]), lw=2)
            (pt,) = ax.plot([c.value_ms], [yy], marker="D", color="black", markersize=6)
            drawn[c.id] = float(pt.get_xdata()[0])
            ax.annotate(f"{c.stat} only (no per-run data)", (mx, yy), xytext=(6, -3),
                        textcoords="offset points", fontsize=7, color="#555")
        else:
            ax.annotate("error" if c.status == "error" else "not run", (lo, yy),
                        xytext=(2, -3), textcoords="offset points", fontsize=8,
                        color="#C44E52")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{c.device} · {c.variant}" for c in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    if values and max(values) / max(min(values), 1e-9) > 50:
        ax.set_xscale("log")
    ax.set_xlabel("latency per run (ms): box 25-75 %, whiskers 5-95 %, line median", fontsize=8)
    ax.set_title(model, fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    _device_separators(ax, rows, y)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png, drawn


def _hboxplot(ax, data, positions):
    kw = dict(positions=positions, whis=(5, 95), widths=0.6, patch_artist=True,
              flierprops=dict(marker=".", markersize=3, alpha=0.5),
              medianprops=dict(color="black", linewidth=1.5))
    try:
        return ax.boxplot(data, orientation="horizontal", **kw)   # matplotlib >= 3.10
    except TypeError:
        return ax.boxplot(data, vert=False, **kw)


def _device_separators(ax, rows: Sequence[Cell], y: Sequence[int]) -> None:
    for i in range(1, len(rows)):
        if rows[i].device != rows[i - 1].device:
            ax.axhline((y[i] + y[i - 1]) / 2, color="#999", lw=0.6, ls="--")


def comparison_chart(changes: Sequence[Change],
                     min_change: float) -> Tuple[bytes, Dict[str, float]]:
    """PNG bytes and {new cell id: ratio drawn} of a comparison's testable places."""
    plt = _plt()
    rows = [c for c in changes if c.ratio is not None]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, max(1.8, ROW_IN * len(rows) + 1.2)))
    y = list(range(len(rows)))[::-1]
    ax.axvspan(1 / (1 + min_change), 1 + min_change, color="#ddd", alpha=0.6, lw=0)
    ax.axvline(1.0, color="black", lw=0.8)
    drawn: Dict[str, float] = {}
    color = {"regression": "#C44E52", "improvement": "#55A868"}
    for yy, c in zip(y, rows):
        col = color.get(c.verdict, "#555")
        if c.lo is not None and c.hi is not None:
            ax.plot([c.lo, c.hi], [yy, yy], color=col, lw=2)
        (pt,) = ax.plot([c.ratio], [yy], marker="o" if c.lo is not None else "D", color=col)
        drawn[c.new_id] = float(pt.get_xdata()[0])
    ax.set_yticks(y)
    ax.set_yticklabels([f"{c.model} · {c.device} · {c.variant}" for c in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ratios = [v for c in rows for v in (c.lo, c.hi, c.ratio) if v]
    if ratios and max(ratios) / min(ratios) > 4:
        ax.set_xscale("log")
    ax.set_xlabel(f"median latency new / base, 95 % interval (grey: within ±{min_change:.0%}; "
                  "> 1 slower)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png, drawn


def nice_ratio(r: float) -> str:
    return f"{r:.2f}x" if math.isfinite(r) else "-"


def models_in(cells: Sequence[Cell]) -> List[str]:
    return list(dict.fromkeys(c.model for c in cells))
