"""Replay stored ``edgert optimize`` searches: how well the latency prediction holds.

Reads saved search states (``<out>/<id>.search.json`` from the API, or the farm store's
``optimize_searches`` rows exported the same way) and predicts, batch by batch in the
order they were measured, every candidate the table was not built from (uniform
choices, finalists, repairs, local search) twice: from the probes' table alone, and
with the online correction (``converters.optimize.latency.fit_correction``) fitted to
the multi-unit candidates measured in *earlier* batches only, as the search does. No
device is needed: this is how the correction was chosen (docs/OPTIMIZE.md).

    python bench/replay_latency.py STATE.search.json [...]

Per search it prints the hit rate within +-10 % and the median |error| of both, for
the candidates predicted before they were measured and for the baselines (measured
before the table existed, so predicted by the table alone in both columns).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def load(path: str):
    import dataclasses

    from converters.optimize.space import UnitSpace
    from converters.optimize.state import SearchState
    from converters.optimize.units import Unit

    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    names = {f.name for f in dataclasses.fields(SearchState)}
    st = SearchState.from_dict({k: v for k, v in d.items() if k in names})
    return st, [Unit.from_dict(u) for u in st.units], UnitSpace.from_dict(st.space)


def table_of(st, units):
    """The probes' table, as ``phases.build_table`` makes it."""
    from converters.optimize.phases import table_from
    from converters.optimize.search import _ms
    from converters.optimize.space import BASE, Candidate

    base = Candidate.uniform(len(units), BASE)
    return table_from(st.results, len(units), _ms(st.results[base.key])), base


def batches(st) -> List[List[str]]:
    """Measured keys grouped by the farm run (batch) that timed them, in order."""
    from converters.optimize.search import _ms

    order: List[List[str]] = []
    index: Dict[str, int] = {}
    for key, rec in st.results.items():
        if _ms(rec) is None:
            continue
        run = str(rec.measurement.get("batch") or (rec.measurement.get("where") or {}).get(
            "run_id") or rec.measurement.get("control_ms"))
        if run not in index:
            index[run] = len(order)
            order.append([])
        order[index[run]].append(key)
    return order


def replay(path: str) -> List[Tuple[str, bool, float, float, float]]:
    """(label, baseline?, table-only ms, corrected ms, measured ms) per scored candidate."""
    from converters.optimize.latency import fit_correction
    from converters.optimize.search import _ms, corrected_ms, is_scored
    from converters.optimize.space import Candidate

    st, units, space = load(path)
    table, base = table_of(st, units)
    l0 = table.base_ms
    seen: List[Tuple[Candidate, float]] = []
    out = []
    for batch in batches(st):
        corr = fit_correction(table, seen, units, space)
        fresh = []
        for key in batch:
            rec = st.results[key]
            if key == base.key or not is_scored(rec):
                continue
            cand = Candidate.from_list(rec.candidate)
            raw = table.predict(cand, units, space)
            if raw is None or _ms(rec) is None:
                continue
            got = corrected_ms(rec, l0)
            out.append((rec.label, "uniform" in rec.kinds and not seen, raw,
                        corr.predict(table, cand, units, space), got))
            fresh.append((cand, got))
        seen += fresh
    return out


def _score(pairs) -> str:
    import numpy as np

    if not pairs:
        return "-"
    err = np.abs([(p - g) / g for p, g in pairs])
    return f"{int((err <= 0.10).sum())}/{len(err)} within 10 %, median {np.median(err) * 100:.1f} %"


def main() -> int:
    paths = sys.argv[1:]
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        rows = replay(path)
        before = [r for r in rows if not r[1]]
        first = [r for r in rows if r[1]]
        print(path)
        print(f"  predicted before measurement: table {_score([(r[2], r[4]) for r in before])}; "
              f"corrected {_score([(r[3], r[4]) for r in before])}")
        print(f"  baselines (table only):       {_score([(r[2], r[4]) for r in first])}")
        print(f"  all, as reported:             "
              f"{_score([(r[2], r[4]) for r in first] + [(r[3], r[4]) for r in before])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
