"""``edgert farm report``: one run (or several) of the store as a report.

Sections, in order: what was planned and what happened; the overview (models x
variants x devices: median latency and speed-up against the chosen baseline);
the comparison with an earlier run (regressions only where statistically clear,
``stats.py``); per model, the latency distributions and every number of every
cell; failures and jobs not run; the devices; the files (sha256, precision and
where it came from, the conversion report). Every number links to its job.

Written as ``report.md`` (+ PNG charts beside it), ``report.html`` (one file,
charts embedded) and ``report.json`` (the cells the tables and the charts were
drawn from, and the values the charts actually drew).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from device_farm.report.cells import (
    Baseline, Cell, add_speedups, build_cells, index, overview)
from device_farm.report.charts import colors, comparison_chart, distribution_chart
from device_farm.report.document import CellText, Document, Td
from device_farm.report.stats import CONFIDENCE, MIN_CHANGE, Change, compare
from device_farm.store import ResultStore
from device_farm.store.location import exists as store_exists
from edgert.errors import EdgertError
from edgert.formatting import dumps_json, fmt_num

LEGEND = ("Each cell is one file on one device: the median latency in ms over the timed "
          "runs (~ the mean, where a native tool prints no median; ! the device throttled), "
          "then the speed-up against the baseline (2.00x: twice as fast). Hover a cell for "
          "its file and job; click it for every number of that job.")


def write_report(db: str, out_dir: str, run_id: Optional[str] = None, all_runs: bool = False,
                 plots: bool = True, baseline: Optional[str] = None,
                 compare_to: Optional[str] = None,
                 min_change: float = MIN_CHANGE) -> Dict[str, object]:
    """Write report.md, report.html, report.json (and PNGs); return paths and counts."""
    base_spec = Baseline.parse(baseline)
    data = _load(db, run_id, all_runs, compare_to)
    cells = build_cells(data.rows)
    add_speedups(cells, base_spec)
    changes: List[Change] = []
    if compare_to:
        new = [c for c in cells if c.run_id == data.run_ids[-1]]
        changes = compare(build_cells(data.base_rows), new, min_change)
    os.makedirs(out_dir, exist_ok=True)
    doc = Document(f"edgert farm report: {', '.join(data.run_ids)}")
    drawn: Dict[str, float] = {}
    _summary_section(doc, data)
    _overview_section(doc, cells, base_spec, data.run_ids)
    if compare_to:
        drawn.update(_comparison_section(doc, changes, compare_to, data.run_ids[-1],
                                         min_change, plots))
    drawn.update(_model_sections(doc, cells, plots))
    _failure_section(doc, cells)
    doc.h(2, "Devices")
    head, body = data.devices
    doc.table(head, [list(r[:-1]) + [Td(r[-1], cls="wrap")] for r in body])
    _files_section(doc, cells)
    paths = {k: os.path.join(out_dir, f"report.{k}") for k in ("md", "html", "json")}
    with open(paths["md"], "w") as f:
        f.write(doc.markdown(out_dir))
    with open(paths["html"], "w") as f:
        f.write(doc.html())
    with open(paths["json"], "w") as f:
        f.write(dumps_json({"runs": data.run_ids, "baseline": base_spec.describe(),
                            "cells": [c.to_dict() for c in cells], "drawn": drawn,
                            "comparison": {"base": compare_to, "min_change": min_change,
                                           "confidence": CONFIDENCE,
                                           "changes": [c.to_dict() for c in changes]}}))
    pngs = [os.path.join(out_dir, b.name) for b in doc.blocks if b.kind == "image"]
    return {"markdown": paths["md"], "html": paths["html"], "json": paths["json"],
            "plots": pngs, "rows": len(cells), "ok": sum(c.status == "ok" for c in cells),
            "failed": sum(c.status == "error" for c in cells),
            "not_run": sum(c.status == "not_run" for c in cells), "runs": data.run_ids,
            "regressions": sum(c.verdict == "regression" for c in changes),
            "improvements": sum(c.verdict == "improvement" for c in changes)}


@dataclass
class _Data:
    """What a report reads from the store."""

    run_ids: List[str]
    rows: List[Dict[str, object]]
    base_rows: List[Dict[str, object]]
    runs: Dict[str, Optional[Dict[str, object]]]
    planned: Dict[str, int]
    devices: Tuple[List[str], List[List[str]]]


def _load(db: str, run_id: Optional[str], all_runs: bool,
          compare_to: Optional[str]) -> _Data:
    if not store_exists(db):
        raise EdgertError(f"{db}: no results database")
    with ResultStore(db) as store:
        if all_runs:
            run_ids = [str(r["run_id"]) for r in store.runs()]
            if not run_ids:
                raise EdgertError(f"no runs in {db}")
        else:
            run_id = run_id or store.latest_run_id()
            if not run_id or not store.run(run_id):
                raise EdgertError(f"no run {run_id!r} in {db}")
            run_ids = [run_id]
        if compare_to and not store.run(compare_to):
            raise EdgertError(f"no run {compare_to!r} in {db} to compare with")
        return _Data(run_ids=run_ids,
                     rows=[r for rid in run_ids for r in store.results(rid)],
                     base_rows=store.results(compare_to) if compare_to else [],
                     runs={rid: store.run(rid) for rid in run_ids},
                     planned={rid: len(store.planned_jobs(rid)) for rid in run_ids},
                     devices=_device_rows(store, run_ids))


def _summary_section(doc: Document, data: _Data) -> None:
    doc.h(2, "Runs")
    rows = []
    for rid in data.run_ids:
        meta = data.runs[rid] or {}
        mine = [r for r in data.rows if r["run_id"] == rid]
        counts = {s: sum(r["status"] == s for r in mine) for s in ("ok", "error", "not_run")}
        planned = data.planned[rid]
        missing = planned - len(mine)
        rows.append([rid, str(meta.get("status", "")), str(meta.get("created_at", ""))[:19],
                     str(meta.get("host", "")), str(planned), str(counts["ok"]),
                     str(counts["error"]), str(counts["not_run"] + max(0, missing))])
    doc.table(["run", "status", "started (UTC)", "host", "planned", "ok", "failed",
               "not run"], rows)
    doc.note(LEGEND)


def _cell_td(c: Optional[Cell], baseline_ids: set) -> Td:
    if c is None:
        return Td("")
    tip = (f"{c.file} (sha256 {c.sha256[:16]}...) on {c.device}; job {c.job_key} of "
           f"{c.run_id}; precision from the {c.precision_source}")
    if c.status != "ok":
        return Td("error" if c.status == "error" else "not run", title=f"{tip}: {c.error}",
                  href=f"#job-{c.job_key}", cls="err", data={"cell": c.id})
    text = ("~" if c.stat == "mean" else "") + fmt_num(c.value_ms)
    if c.speedup is not None:
        text += " (base)" if c.id in baseline_ids and abs(c.speedup - 1) < 1e-12 else \
            f" ({c.speedup:.2f}x)"
    if c.throttled:
        text += " !"
        tip += "; throttled: " + "; ".join(c.warnings)
    cls = "" if c.speedup is None or abs(c.speedup - 1) < 0.05 else (
        "fast" if c.speedup > 1 else "slow")
    return Td(text, title=tip, href=f"#job-{c.job_key}", cls=cls,
              data={"cell": c.id, "value": repr(c.value_ms)})


def _overview_section(doc: Document, cells: Sequence[Cell], baseline: Baseline,
                      run_ids: Sequence[str]) -> None:
    doc.h(2, "Overview")
    doc.p(f"Median latency in ms, and the speed-up against {baseline.describe()} "
          "(--baseline to choose another).")
    baseline_ids = {c.baseline_job for c in cells if c.baseline_job}
    for rid in run_ids:
        mine = [c for c in cells if c.run_id == rid]
        if len(run_ids) > 1:
            doc.h(3, f"Run {rid}")
        at = index(mine)
        devices = sorted({c.device for c in mine})
        rows = []
        for model, (variants, _) in overview(mine).items():
            for v in variants:
                rows.append([Td(model, cls="l"), Td(v, cls="l")]
                            + [_cell_td(at.get((model, v, d)), baseline_ids) for d in devices])
        doc.table(["model", "variant"] + devices, rows)


def _comparison_section(doc: Document, changes: Sequence[Change], base: str, new: str,
                        min_change: float, plots: bool) -> Dict[str, float]:
    doc.h(2, f"Compared with run {base}")
    regressions = [c for c in changes if c.verdict == "regression"]
    doc.p(f"{len(changes)} cells in both runs: {len(regressions)} regression(s), "
          f"{sum(c.verdict == 'improvement' for c in changes)} improvement(s). A cell is "
          f"flagged only when the 95 % bootstrap interval of its median ratio (new / base) "
          f"lies wholly beyond ±{min_change:.0%} (--min-change); see docs/DEVICES.md.")
    cls = {"regression": "reg", "improvement": "imp"}
    rows: List[List[CellText]] = [
        [Td(c.model, cls="l"), Td(c.variant, cls="l"), c.device, fmt_num(c.base_ms),
             fmt_num(c.new_ms), Td(c.size(), cls=cls.get(c.verdict, "")),
             Td(c.verdict, cls=cls.get(c.verdict, "")), f"{c.n_base} / {c.n_new}",
             Td(c.note, cls="wrap")] for c in changes]
    doc.table(["model", "variant", "device", f"{base} ms", f"{new} ms", "change", "verdict",
               "runs", "note"], rows)
    if not plots or not any(c.ratio is not None for c in changes):
        return {}
    png, drawn = comparison_chart(changes, min_change)
    doc.image("compare.png", png, f"median ratio {new} / {base}")
    return {f"compare:{k}": v for k, v in drawn.items()}


def _model_sections(doc: Document, cells: Sequence[Cell], plots: bool) -> Dict[str, float]:
    drawn: Dict[str, float] = {}
    palette = colors([c.variant for c in cells])
    models = list(dict.fromkeys((c.run_id, c.model) for c in cells))
    many_runs = len({c.run_id for c in cells}) > 1
    for i, (rid, model) in enumerate(models):
        mine = [c for c in cells if c.run_id == rid and c.model == model]
        doc.h(2, f"{model}" + (f" ({rid})" if many_runs else ""))
        reports = sorted({c.report_path for c in mine if c.report_path})
        if reports:
            doc.note("conversion report(s): " + ", ".join(reports))
        if plots:
            png, got = distribution_chart(model, mine, palette)
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model) or "model"
            doc.image(f"latency_{i:02d}_{safe}.png", png, f"{model}: latency distributions")
            drawn.update(got)
        doc.table(*_detail(mine))
    return drawn


def _detail(cells: Sequence[Cell]) -> Tuple[List[str], List[List[CellText]]]:
    head = ["job", "device", "variant", "file", "median ms", "p90", "p99", "mean", "std", "min",
            "max", "init", "first", "runs", "notes"]
    rows: List[List[CellText]] = []
    for c in cells:
        m = dict(c.metrics)
        if m.get("max_ms") is None and c.latencies:
            m["max_ms"] = max(c.latencies)       # edgert's runner stores every latency
        tip = f"{c.id}; {c.engine or 'engine ?'}, {fmt_num(c.threads)} thread(s)"
        rows.append([Td(c.job_key[:10], anchor=f"job-{c.job_key}", title=tip, cls="l"),
                     c.device, Td(c.variant, cls="l"), Td(c.file, cls="l", title=c.path),
                     Td(fmt_num(m.get("median_ms")) if c.status == "ok" else c.status,
                        cls="" if c.status == "ok" else "err")]
                    + [fmt_num(m.get(k)) for k in ("p90_ms", "p99_ms", "mean_ms", "std_ms",
                                                   "min_ms", "max_ms", "init_ms",
                                                   "first_run_ms")]
                    + [Td(f"{fmt_num(c.runs)}" + ("" if len(c.latencies) == (c.runs or 0)
                                                  else f" ({len(c.latencies)} stored)"),
                          title=f"{len(c.latencies)} latencies stored"),
                       Td("; ".join(c.warnings) or (c.error if c.status != "ok" else ""),
                          cls="wrap")])
    return head, rows


def _failure_section(doc: Document, cells: Sequence[Cell]) -> None:
    bad = [c for c in cells if c.status != "ok"]
    if not bad:
        return
    doc.h(2, "Failures and jobs not run")
    doc.table(["job", "device", "model", "variant", "file", "status", "why"],
              [[Td(c.job_key[:10], href=f"#job-{c.job_key}", cls="l"), c.device, c.model,
                Td(c.variant, cls="l"), Td(c.file, cls="l"), c.status,
                Td(c.error, cls="wrap")] for c in bad])


def _files_section(doc: Document, cells: Sequence[Cell]) -> None:
    doc.h(2, "Files")
    doc.p("Precision is read from the file's own bytes and from the conversion report that "
          "lists the file (same name and size): \"report\" when both agree, \"file\" when "
          "only the bytes speak or when they disagree with the report (the label then says "
          "what the report claimed). Never from the file's name.")
    seen: Dict[str, Cell] = {}
    for c in cells:
        seen.setdefault(c.sha256, c)
    doc.table(["file", "model", "variant", "sha256", "precision from", "conversion report",
               "evidence"],
              [[Td(c.file, cls="l", title=c.path), Td(c.model, cls="l"),
                Td(c.variant.split(" [")[0], cls="l"), Td(c.sha256[:16], title=c.sha256),
                Td(c.precision_source, cls="l"), Td(c.report_path or "-", cls="wrap"),
                Td(c.evidence, cls="wrap")] for c in seen.values()])


def _device_rows(store: ResultStore, run_ids: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    head = ["device", "transport", "status", "arch", "SoC / CPU", "cores", "max MHz",
            "memory MB", "OS", "engines"]
    body: List[List[str]] = []
    seen = set()
    for run_id in run_ids:
        for d in store.devices(run_id):
            if d["device"] in seen:
                continue
            seen.add(d["device"])
            info = json.loads(str(d["info_json"] or "null")) or {}
            spec = json.loads(str(d["spec_json"] or "{}"))
            body.append([str(d["device"]), spec.get("transport", ""),
                         str(d["status"]) + (f": {d['error']}" if d["error"] else ""),
                         info.get("arch", ""), info.get("soc") or info.get("cpu", ""),
                         str(info.get("cores", "")),
                         "/".join(str(f) for f in info.get("max_freqs_mhz", [])),
                         str(info.get("memory_mb", "")),
                         " ".join(filter(None, [info.get("os", ""), info.get("jetpack", "")])),
                         ", ".join(f"{k} {v}" for k, v in (info.get("engines") or {}).items())])
    return head, body


def print_overview(db: str, run_id: Optional[str] = None, baseline: Optional[str] = None) -> None:
    """The overview of a run (the latest by default) on the console."""
    from edgert.formatting import print_table

    spec = Baseline.parse(baseline)
    with ResultStore(db) as store:
        run_id = run_id or store.latest_run_id()
        rows = store.results(run_id) if run_id else []
    cells = build_cells(rows)
    add_speedups(cells, spec)
    baseline_ids = {c.baseline_job for c in cells if c.baseline_job}
    at = index(cells)
    texts: List[str] = []
    for model, (variants, devices) in overview(cells).items():
        rows = [[v] + [_cell_td(at.get((model, v, d)), baseline_ids).text for d in devices]
                for v in variants]
        texts += [t for r in rows for t in r[1:]]
        print_table(f"{model}: ms (x vs {spec.short()})", ["variant"] + devices, rows)
    if cells:
        marks = [m for m, shown in (("~ mean: the tool prints no median", "~"),
                                    ("! throttled", "!")) if any(shown in t for t in texts)]
        print("median latency in ms" + (f" ({'; '.join(marks)})" if marks else "")
              + f", and the speed-up against {spec.describe()}")
