"""What a search leaves behind: the Pareto plot, the report, the per-layer decisions.

``points(state)`` lists every measured candidate with its role: the uniform choices
(fp32, int8, pruning at each keep ratio, block sparsity), the probes of the latency
table, the searched points (the knapsack's front and the repairs) and the chosen one.
``pareto(rows)`` marks the measured front; ``beats_uniform(rows)`` names the searched
points that are strictly better than every uniform choice at equal or lower latency
(more accurate than each uniform point that is at least as slow). ``plot_front``
draws accuracy against measured latency; ``write_report`` writes ``report.md`` and
``report.json`` beside it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from converters.optimize.space import BASE, Candidate
from converters.optimize.state import SearchState

ROLES = ("fp32", "uniform int8", "uniform pruning", "uniform", "probe", "searched", "chosen")


def _role(key: str, rec, state: SearchState, base_key: str) -> str:
    if key == state.chosen:
        return "chosen"
    if key == base_key:
        return "fp32"
    opts = {tuple(o) for o in rec.candidate}
    if "uniform" in rec.kinds or len(opts) == 1:
        # a uniform choice stays one when the front proposes it too: it must not count
        # as a searched point beating the uniform choices
        if any(o[1] < 1.0 or o[2] > 0.0 for o in opts):
            return "uniform pruning"
        return "uniform int8" if any(o[0] != "fp32" for o in opts) else "uniform"
    if {"front", "repair", "local"} & set(rec.kinds):
        return "searched"
    return "probe"


def points(state: SearchState) -> List[Dict[str, Any]]:
    """Every measured and evaluated candidate, with its role and figures."""
    base_key = Candidate.uniform(len(state.units), BASE).key
    base = state.results.get(base_key)
    base_ms = (base.measurement or {}).get("latency_ms") if base else None
    base_acc = (base.evaluation or {}).get("accuracy") if base else None
    rows = []
    for key, rec in state.results.items():
        m, e = rec.measurement or {}, rec.evaluation or {}
        if not m.get("ok") or e.get("accuracy") is None:
            continue
        ms = m["latency_ms"]
        rows.append({"key": key, "label": rec.label, "role": _role(key, rec, state, base_key),
                     "kinds": list(rec.kinds), "accuracy": e["accuracy"],
                     "drop_pt": None if base_acc is None else (base_acc - e["accuracy"]) * 100,
                     "damage": e.get("damage"), "ms": ms, "min_ms": m.get("min_ms"),
                     "median_ms": m.get("median_ms"),
                     "speedup": base_ms / ms if base_ms and ms else None,
                     "predicted_ms": rec.predicted_ms,
                     "corrected_ms": ms * base_ms / m["control_ms"]
                     if base_ms and m.get("control_ms") else ms,
                     "size": (rec.built or {}).get("size"),
                     "path": (rec.built or {}).get("path"), "where": m.get("where", {})})
    rows.sort(key=lambda r: r["ms"])
    mark_pareto(rows)
    return rows


def mark_pareto(rows: List[Dict[str, Any]]) -> None:
    """``pareto``: no other row is at least as fast and more accurate (or faster and
    as accurate)."""
    for r in rows:
        r["pareto"] = not any(
            (o["ms"] <= r["ms"] and o["accuracy"] > r["accuracy"]) or
            (o["ms"] < r["ms"] and o["accuracy"] >= r["accuracy"]) for o in rows if o is not r)


def beats_uniform(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Searched (or chosen) rows more accurate than every uniform row that is at least
    as slow (and there is at least one such uniform row)."""
    uniforms = [r for r in rows if r["role"] in ("fp32", "uniform int8", "uniform pruning",
                                                  "uniform")]
    out = []
    for r in rows:
        if r["role"] not in ("searched", "chosen"):
            continue
        slower = [u for u in uniforms if u["ms"] >= r["ms"]]
        if slower and all(r["accuracy"] > u["accuracy"] for u in slower):
            out.append(r)
    return out


STYLE = {"fp32": ("*", "black", 160), "uniform int8": ("s", "tab:blue", 70),
         "uniform pruning": ("^", "tab:green", 60), "uniform": ("D", "tab:purple", 50),
         "probe": (".", "lightgray", 25), "searched": ("o", "tab:orange", 50),
         "chosen": ("P", "tab:red", 180)}


def plot_front(rows: Sequence[Dict[str, Any]], path: str, title: str,
               budget_ms: Optional[float] = None, floor: Optional[float] = None,
               other: Optional[Sequence[Dict[str, Any]]] = None, other_label: str = "") -> str:
    """Accuracy (%) against measured latency (ms): every role in its own marker, the
    measured front as a line, the budget and the accuracy floor as dashed lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.subplots()
    for role in ROLES:
        sel = [r for r in rows if r["role"] == role]
        if sel:
            marker, color, size = STYLE[role]
            ax.scatter([r["ms"] for r in sel], [r["accuracy"] * 100 for r in sel], marker=marker,
                       color=color, s=size, edgecolors="black" if role != "probe" else "none",
                       linewidths=0.4, label=role, zorder=3 if role != "probe" else 1)
    front = [r for r in rows if r["pareto"]]
    ax.plot([r["ms"] for r in front], [r["accuracy"] * 100 for r in front], color="tab:orange",
            lw=1, alpha=0.7, label="measured front")
    if other:
        of = [r for r in other if r.get("pareto")]
        ax.plot([r["ms"] for r in of], [r["accuracy"] * 100 for r in of], color="tab:gray",
                lw=1, ls="--", marker="x", label=other_label or "other search")
    if budget_ms is not None:
        ax.axvline(budget_ms, color="tab:red", ls=":", lw=1, label=f"budget {budget_ms:.3g} ms")
    if floor is not None:
        ax.axhline(floor * 100, color="tab:red", ls="--", lw=0.8, label="accuracy floor")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _cell(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(state: SearchState, rows: Sequence[Dict[str, Any]], outcome: Dict[str, Any],
             decisions: Sequence[Dict[str, Any]], predictions: Sequence[Dict[str, Any]],
             context: Sequence[str], files: Dict[str, str]) -> str:
    """The report as Markdown."""
    lines = [f"# edgert optimize: {state.config.get('model_name', '')} on "
             f"{state.config.get('device', '')} ({state.config.get('target', '')})", ""]
    lines += [f"- {c}" for c in context]
    lines += [f"- search {state.search_id}: {state.status}, {state.elapsed_s:.0f} s; "
              f"{len(state.results)} candidates, {sum(1 for r in rows)} measured; "
              f"farm runs: {', '.join(state.runs) or '-'}",
              f"- goal: {state.config.get('goal_text', '')}", f"- **{outcome['message']}**", ""]
    if files:
        lines += ["## Files", ""] + [f"- {k}: `{v}`" for k, v in files.items()] + [""]
    lines += ["## Pareto front", "", "![front](front.png)", ""]
    wins = beats_uniform(rows)
    lines.append(f"Searched points strictly better than every uniform choice at equal or lower "
                 f"latency: {len(wins)}" + (f" ({', '.join(w['label'] for w in wins[:3])})"
                                            if wins else ""))
    lines += ["", "| role | candidate | accuracy % | drop pt | ms | speed-up | predicted ms | "
              "error | front |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["role"] == "probe":
            continue
        err = (None if r["predicted_ms"] is None else
               f"{(r['predicted_ms'] - r['corrected_ms']) / r['corrected_ms'] * 100:+.1f}%")
        lines.append(f"| {r['role']} | {r['label']} | {r['accuracy'] * 100:.2f} | "
                     f"{_cell(r['drop_pt'], 2)} | {r['ms']:.4f} | {_cell(r['speedup'], 2)}x | "
                     f"{_cell(r['predicted_ms'], 4)} | {err or '-'} | "
                     f"{'yes' if r['pareto'] else ''} |")
    lines += ["", "## Latency prediction (per-unit table measured on the device)", "",
              "Errors are against each file's latency relative to the fp32 file timed again "
              "in the same batch (a drifting device scales a batch alike). Each candidate's "
              "prediction was made before it was measured, by the table corrected with the "
              "candidates measured before it; the baselines were measured before the table "
              "existed and are shown against the table alone.", ""]
    lines += [f"- {line}" for line in hit_rates(predictions)]
    lines += ["", "## Per-layer decisions (chosen model)", "",
              "| unit | layer | op | precision | channels | block sparsity |",
              "|---|---|---|---|---|---|"]
    for d in decisions:
        lines.append(f"| {d['unit']} | {d['node']} | {d['op']} | {d['precision']} | "
                     f"{d['channels']} | {d['sparsity']:g} |")
    if state.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in state.notes]
    return "\n".join(lines) + "\n"


def hit_rates(predictions: Sequence[Dict[str, Any]]) -> List[str]:
    """The prediction's hit rate within +-10 %: for the candidates predicted before they
    were measured (the table corrected by the earlier batches), for the baselines
    (measured before the table existed: the table alone), and for all."""
    import numpy as np

    out = []
    for name, sel in (("predicted before measurement", ("before",)),
                      ("baselines, measured before the table (table alone)", ("table",)),
                      ("all measured candidates", ("before", "table"))):
        errs = [abs(p["error"]) for p in predictions if p.get("basis", "table") in sel]
        if errs:
            within = sum(1 for e in errs if e <= 0.10)
            out.append(f"{name}: {within} of {len(errs)} within +-10 % "
                       f"({within / len(errs) * 100:.0f} %), median |error| "
                       f"{float(np.median(errs)) * 100:.1f} %, worst {max(errs) * 100:.1f} %")
    return out


def write_json(path: str, obj: Dict[str, Any]) -> None:
    from edgert.formatting import dumps_json

    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps_json(obj))


def load_rows(state_dict: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The measured points of a saved search (for ``--compare``)."""
    return points(SearchState.from_dict(state_dict))

