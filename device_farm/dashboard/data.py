"""What each dashboard page reads from the store, as plain data for the templates.

Pages that list everything (runs, devices, model groups) use aggregate SQL, so
they stay fast over many results; a run's page reads that run's rows only; a
model's history reads that model's rows, for its latest runs. Verdicts of run-to-
run comparisons (``report.stats``: a bootstrap interval, tens of ms each) are kept
in memory: the latencies of a finished run never change.
"""
from __future__ import annotations

import csv
import io
import json
import threading
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from device_farm.report.cells import Baseline, Cell, add_speedups, build_cells, index, overview
from device_farm.report.stats import MIN_CHANGE, Change, compare
from device_farm.store import RESULT_COLUMNS, ResultStore
from edgert.formatting import fmt_num

#: runs a model's history shows by default
HISTORY_RUNS = 12

_VERDICTS: "OrderedDict[Tuple[str, ...], Change]" = OrderedDict()
_VERDICTS_GUARD = threading.Lock()
_VERDICTS_MAX = 20000


def runs_page(store: ResultStore) -> List[Dict[str, object]]:
    counts = store.run_counts()
    out = []
    for r in reversed(store.runs()):
        c = counts.get(str(r["run_id"]), {})
        planned = c.get("planned", 0)
        ended = c.get("ok", 0) + c.get("error", 0) + c.get("not_run", 0)
        out.append(dict(r, planned=planned, ok=c.get("ok", 0), failed=c.get("error", 0),
                        not_run=c.get("not_run", 0), pending=max(0, planned - ended)))
    return out


def devices_page(store: ResultStore) -> List[Dict[str, object]]:
    from device_farm.team.janitor import stale_after

    stale = stale_after()
    out = []
    for d in store.device_states():
        spec = json.loads(str(d.get("spec_json") or "{}"))
        age = d["agent_age_s"]
        live = isinstance(age, float) and age < stale and d.get("agent_status") == "running"
        state = ("busy" if live and d["busy_job_key"] else "online" if live and d["online"]
                 else "offline" if live else "no agent")
        out.append(dict(d, address=spec.get("address", ""), state=state, live=live,
                        age=fmt_num(age) if isinstance(age, float) else "-"))
    return out


def run_page(store: ResultStore, run_id: str, baseline: Optional[str] = None
             ) -> Dict[str, object]:
    rows = store.results(run_id)
    ids = {(r["run_id"], r["job_key"]): r["id"] for r in rows}
    cells = build_cells(rows)
    spec = Baseline.parse(baseline)
    add_speedups(cells, spec)
    at = index(cells)
    tables = []
    for model, (variants, devices) in overview(cells).items():
        body = []
        for v in variants:
            line = []
            for d in devices:
                c = at.get((model, v, d))
                line.append(None if c is None else _cell_view(c, ids))
            body.append((v, line))
        tables.append({"model": model, "devices": devices, "rows": body})
    failures = [dict(_cell_view(c, ids), error=c.error) for c in cells if c.status != "ok"]
    return {"tables": tables, "failures": failures, "baseline": spec.describe(),
            "planned": len(store.planned_jobs(run_id)),
            "ok": sum(c.status == "ok" for c in cells),
            "failed": sum(c.status == "error" for c in cells),
            "not_run": sum(c.status == "not_run" for c in cells)}


def _cell_view(c: Cell, ids: Dict[Tuple[object, object], object]) -> Dict[str, object]:
    text = "-" if c.value_ms is None else (("~" if c.stat == "mean" else "")
                                           + fmt_num(c.value_ms)
                                           + ("!" if c.throttled else ""))
    return {"id": ids.get((c.run_id, c.job_key)), "text": text, "status": c.status,
            "device": c.device, "variant": c.variant, "model": c.model, "file": c.file,
            "speedup": None if c.speedup is None else f"{c.speedup:.2f}x",
            "title": f"{c.file} on {c.device}; job {c.job_key}"}


def history_page(store: ResultStore, group: str, last: int = HISTORY_RUNS,
                 min_change: float = MIN_CHANGE, compute: bool = True) -> Dict[str, object]:
    """Per (variant, device): the value of each of the model's latest runs, and the
    verdict against the run before it (regressions only where statistically clear).
    ``compute=False``: only verdicts already known; ``pending`` counts the others (the
    page then says so and reloads while they are computed in the background)."""
    rows = store.group_results(group)
    by_run: "OrderedDict[str, List[Dict[str, object]]]" = OrderedDict()
    created = {str(r["run_id"]): str(r["created_at"]) for r in store.runs()}
    for r in sorted(rows, key=lambda r: (created.get(str(r["run_id"]), ""), r["id"])):
        by_run.setdefault(str(r["run_id"]), []).append(r)
    run_ids = list(by_run)[-last:]
    cells = {rid: build_cells(by_run[rid]) for rid in run_ids}
    ids = {(r["run_id"], r["job_key"]): r["id"] for rid in run_ids for r in by_run[rid]}
    places: "OrderedDict[Tuple[str, str], None]" = OrderedDict()
    for rid in run_ids:
        for c in cells[rid]:
            places[(c.variant, c.device)] = None
    grid: Dict[Tuple[str, str, str], Dict[str, object]] = {}
    pending = 0
    for i, rid in enumerate(run_ids):
        verdicts: Dict[Tuple[str, str], Change] = {}
        if i:
            verdicts, missing = _verdicts(cells[run_ids[i - 1]], cells[rid], min_change,
                                          compute)
            pending += missing
        for c in cells[rid]:
            view = _cell_view(c, ids)
            ch = verdicts.get((c.variant, c.device))
            if ch is not None:
                view.update(verdict=ch.verdict, change=ch.size())
            grid[(rid, c.variant, c.device)] = view
    lines = [{"variant": v, "device": d, "cells": [grid.get((rid, v, d)) for rid in run_ids]}
             for v, d in places]
    return {"group": group, "runs": run_ids, "lines": lines,
            "regressions": sum(1 for g in grid.values() if g.get("verdict") == "regression"),
            "total_runs": len(by_run), "pending": pending}


def _verdicts(base: Sequence[Cell], new: Sequence[Cell], min_change: float,
              compute: bool = True) -> Tuple[Dict[Tuple[str, str], Change], int]:
    """The verdicts of ``new`` against ``base`` (cached), and how many are missing
    (not computed: ``compute`` False)."""
    out: Dict[Tuple[str, str], Change] = {}
    todo_base, todo_new = [], []
    with _VERDICTS_GUARD:
        for c in new:
            b = next((x for x in base if (x.variant, x.device) == (c.variant, c.device)), None)
            if b is None:
                continue
            key = (b.run_id, b.job_key, c.run_id, c.job_key, str(min_change))
            if key in _VERDICTS:
                out[(c.variant, c.device)] = _VERDICTS[key]
            else:
                todo_base.append(b)
                todo_new.append(c)
    if not compute:
        return out, len(todo_new)
    for ch, b, c in zip(compare(todo_base, todo_new, min_change), todo_base, todo_new):
        out[(c.variant, c.device)] = ch
        with _VERDICTS_GUARD:
            _VERDICTS[(b.run_id, b.job_key, c.run_id, c.job_key, str(min_change))] = ch
            while len(_VERDICTS) > _VERDICTS_MAX:
                _VERDICTS.popitem(last=False)
    return out, 0


def to_csv(rows: Sequence[Dict[str, object]], columns: Sequence[str] = ("id",) + RESULT_COLUMNS
           ) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in columns})
    return buf.getvalue()
