"""The roofline plot: both roofs, the ridge point, every layer as a point sized
by its share of the bound time (color: memory- or compute-bound), and the whole
model at its measured throughput when a latency is known. PNG or SVG by the
file's extension; a bare matplotlib Figure, so no display is needed."""
from __future__ import annotations

import os
from typing import List

from converters.roofline.model import RooflineReport
from edgert.errors import InputError

FORMATS = (".png", ".svg")


def plot_roofline(report: RooflineReport, path: str) -> List[str]:
    """Write the plot to ``path`` (and its twin in the other format); return the paths."""
    root, ext = os.path.splitext(path)
    if ext.lower() not in FORMATS:
        raise InputError(f"{path}: plot must end in .png or .svg")
    from matplotlib.figure import Figure   # no pyplot: no global state, no display

    peak, bw, ridge = report.peak_gflops, report.roofs.bandwidth_gbps, report.ridge
    pts = [l for l in report.layers if l.flops > 0 and l.bytes > 0]
    lo = min([l.intensity for l in pts] + [ridge / 100]) / 2
    hi = max([l.intensity for l in pts] + [ridge * 10]) * 2
    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.plot([lo, ridge, hi], [bw * lo, peak, peak], color="black", lw=2, label="roofs")
    ax.axvline(ridge, color="gray", ls=":", lw=1)
    ax.annotate(f"ridge {ridge:.3g} FLOP/B", (ridge, peak), textcoords="offset points",
                xytext=(6, -14), fontsize=8, color="gray")
    ax.text(hi, peak, f"{peak:.4g} G{'OP' if report.precision == 'int8' else 'FLOP'}/s ",
            ha="right", va="bottom", fontsize=8)
    ax.text(lo * 1.5, bw * lo * 4, f"{bw:.3g} GB/s", fontsize=8)
    top_share = max([l.share for l in pts] + [1e-9])
    for kind, color in (("memory", "tab:blue"), ("compute", "tab:orange")):
        sel = [l for l in pts if l.bound == kind]
        if sel:
            ax.scatter([l.intensity for l in sel], [l.attainable_gflops for l in sel],
                       s=[15 + 400 * l.share / top_share for l in sel], color=color, alpha=0.55,
                       edgecolors="black", linewidths=0.4, label=f"{kind}-bound layers")
    if report.attained_gflops:
        ax.scatter([report.flops / report.bytes], [report.attained_gflops], marker="*", s=220,
                   color="tab:red", edgecolors="black", zorder=5,
                   label=f"model, measured ({report.efficiency:.0%} of bound)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(min([bw * lo] + [l.attainable_gflops for l in pts if l.attainable_gflops]
                    + [report.attained_gflops or peak]) / 2, peak * 3)
    ax.set_xlabel(f"arithmetic intensity (FLOP/byte, {report.precision} storage)")
    ax.set_ylabel("GFLOP/s" if report.precision != "int8" else "GOP/s")
    ax.set_title(f"{report.model} on {report.roofs.title}\nbound {report.bound_ms:.3g} ms"
                 + (f", measured {report.latency_ms:.3g} ms" if report.latency_ms else ""),
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    paths = []
    for e in FORMATS:
        out = root + e
        fig.savefig(out)
        paths.append(out)
    return paths
