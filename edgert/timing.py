"""The timing protocol: one place, used by ``Session.benchmark``, ``edgert bench``
and the device farm's runner on boards, so every latency edgert reports was
measured the same way.

Protocol: (optional) cool-down pause; the first run timed on its own (it pays
for lazy allocation and kernel selection); ``warmup`` untimed runs; then
``runs`` timed runs, extended until ``min_seconds`` have passed. Each run is
timed with ``time.perf_counter_ns`` around the engine call alone.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np


@dataclass
class BenchmarkResult:
    """Latency statistics of one model on one engine with one setting (times in ms)."""

    runs: int
    warmup: int
    threads: Optional[int]
    init_ms: float
    first_run_ms: float
    min_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    peak_rss_mb: float
    engine: str = ""
    engine_version: str = ""
    model: str = ""
    format: str = ""
    precision: str = ""
    latencies_ms: List[float] = field(default_factory=list, repr=False)

    def to_dict(self, latencies: bool = True) -> Dict[str, object]:
        d = asdict(self)
        if not latencies:
            d.pop("latencies_ms")
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "BenchmarkResult":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})  # type: ignore[arg-type]


def latency_stats(latencies_ms: List[float]) -> Dict[str, float]:
    """min / median / p90 / p99 / mean / std of a list of latencies."""
    a = np.asarray(latencies_ms, dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return dict(min_ms=nan, median_ms=nan, p90_ms=nan, p99_ms=nan, mean_ms=nan, std_ms=nan)
    return dict(min_ms=float(a.min()), median_ms=float(np.median(a)),
                p90_ms=float(np.percentile(a, 90)), p99_ms=float(np.percentile(a, 99)),
                mean_ms=float(a.mean()), std_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (nan where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_runs(call: Callable[[], object], runs: int = 50, warmup: int = 5,
              min_seconds: float = 0.0, cooldown_s: float = 0.0,
              max_runs: Optional[int] = None) -> Dict[str, object]:
    """Run the protocol on ``call``; return first-run time and every timed latency."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must be 0 or more")
    if cooldown_s > 0:
        time.sleep(cooldown_s)
    clock = time.perf_counter_ns
    t0 = clock()
    call()
    first_ms = (clock() - t0) / 1e6
    for _ in range(warmup):
        call()
    latencies: List[float] = []
    limit = max_runs or max(runs, 100_000)
    start = clock()
    while len(latencies) < runs or (
            (clock() - start) / 1e9 < min_seconds and len(latencies) < limit):
        t0 = clock()
        call()
        latencies.append((clock() - t0) / 1e6)
    return {"first_run_ms": first_ms, "latencies_ms": latencies}


def cpu_count() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
