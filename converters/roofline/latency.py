"""Where a measured latency comes from: a results file, a number, or a run now.

Results files: the JSON ``edgert bench --json`` prints (``BenchmarkResult``:
``median_ms`` and the engine/model it belongs to), or a list of them (the first
is used unless ``engine`` picks one). The device farm's results store (SQLite)
is the next source: ``latency_from`` is the one place to teach it.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Tuple

from edgert.errors import InputError


def latency_from(path: str, engine: Optional[str] = None) -> Tuple[float, str]:
    """(median ms, a description of where it came from) from a results file."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such results file")
    # hook: the farm's SQLite store goes here (sniff b"SQLite format 3\0" and query it)
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON results file from `edgert bench --json` "
                         f"({exc})") from None
    rows = data if isinstance(data, list) else [data]
    if engine:
        rows = [r for r in rows if isinstance(r, dict) and r.get("engine") == engine]
    for r in rows:
        if isinstance(r, dict) and isinstance(r.get("median_ms"), (int, float)) \
                and r["median_ms"] > 0:
            what = ", ".join(str(r[k]) for k in ("engine_version", "model") if r.get(k))
            return float(r["median_ms"]), f"median of {r.get('runs', '?')} runs in {path}" + (
                f" ({what})" if what else "")
    raise InputError(f"{path}: no result with a positive median_ms"
                     + (f" for engine {engine!r}" if engine else ""))


def measure_latency(model_path: str, engine: Optional[str] = None,
                    threads: Optional[int] = None, runs: int = 20) -> Tuple[float, str]:
    """Median latency of ``model_path`` on this host through ``edgert.load``."""
    import edgert

    sess = edgert.load(model_path, engine=engine, threads=threads, check="structure")
    res = sess.benchmark(runs=runs, warmup=3)
    return res.median_ms, (f"median of {res.runs} runs on this host, {res.engine_version}, "
                           f"{res.threads} threads")
