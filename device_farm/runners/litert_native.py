"""LiteRT's native ``benchmark_model`` binary (phones without Python).

The binary is the user's (see docs/DEVICES.md for where to get it); it goes to
the device through the cache. ``--min_secs=0 --warmup_min_secs=0`` make it run
exactly ``--num_runs`` timed and ``--warmup_runs`` untimed iterations, like the
edgert protocol.

Output (stdout, or logcat lines with a ``tflite  :`` prefix), as documented:

    Initialized session in 92.318ms.
    count=3 first=235158 curr=200386 min=199462 max=235158 avg=211669 std=16613
    count=25 first=187533 curr=140990 min=140071 max=195121 avg=145528 std=13583 p5=...
             median=141253 p95=...    (p5/median/p95 only in newer builds)
    Inference timings in us: Init: 92318, First inference: 235158, Warmup (avg): 211669,
        Inference (avg): 145528           (one line)
    Memory footprint delta from the start of the tool (MB): init=54.2852 overall=73.4102
    Overall peak memory footprint (MB) via periodic monitoring: 93.2383

Times are microseconds. The statistics line of the timed runs is the one whose
``avg`` equals ``Inference (avg)`` (op-profiling summaries print count= lines
too). Older builds print no median; p90/p99 are never printed (left empty).
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional

from device_farm.runners import register_runner
from device_farm.runners.base import (
    RunContext, Runner, RunnerError, affinity_prefix, cd_prefix, device_binary, sleep_prefix)
from device_farm.transports.base import env_prefix, quote_argv

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_TIMINGS = re.compile(r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM
                      + r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM)
_STATS = re.compile(r"count=(\d+)((?: \w+=" + _NUM + r")+)")
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _NUM)
_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init="
                    + _NUM + r" overall=" + _NUM)
_THREADS = re.compile(r"Num threads: \[(\d+)\]")


def _stats_lines(text: str) -> List[Dict[str, float]]:
    out = []
    for m in _STATS.finditer(text):
        fields = {"count": float(m.group(1))}
        for kv in m.group(2).split():
            k, v = kv.split("=", 1)
            fields[k] = float(v)
        out.append(fields)
    return out


def parse_benchmark_model_output(text: str) -> Dict[str, object]:
    """Latency fields (ms) from ``benchmark_model`` output; RunnerError if it has none."""
    m = _TIMINGS.search(text)
    if not m:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise RunnerError(f"benchmark_model printed no 'Inference timings' line: {tail!r}")
    init_us, first_us, warm_us, avg_us = (float(g) for g in m.groups())
    timed: Optional[Dict[str, float]] = None
    for stats in _stats_lines(text[:m.start()]):
        if abs(stats.get("avg", -1.0) - avg_us) <= max(1.0, avg_us * 1e-4):
            timed = stats
    ms = 1e-3
    out: Dict[str, object] = {
        "init_ms": init_us * ms, "first_run_ms": first_us * ms, "mean_ms": avg_us * ms,
        "min_ms": None, "median_ms": None, "p90_ms": None, "p99_ms": None, "std_ms": None,
        "max_ms": None, "peak_rss_mb": None, "engine": "litert",
        "extra": {"warmup_avg_ms": warm_us * ms}}
    if timed:
        out.update(runs=int(timed["count"]), min_ms=timed.get("min", 0) * ms,
                   max_ms=timed.get("max", 0) * ms, std_ms=timed.get("std", 0) * ms)
        if "median" in timed:
            out["median_ms"] = timed["median"] * ms
        for p in ("p5", "p95"):
            if p in timed:
                out["extra"][f"{p}_ms"] = timed[p] * ms
    peak = _PEAK.search(text)
    if peak:
        out["peak_rss_mb"] = float(peak.group(1))
    delta = _DELTA.search(text)
    if delta:
        out["extra"]["mem_delta_init_mb"] = float(delta.group(1))
        out["extra"]["mem_delta_overall_mb"] = float(delta.group(2))
    threads = _THREADS.search(text)
    if threads:
        out["threads"] = int(threads.group(1))
    return out


@register_runner
class LiteRTBenchmarkModel(Runner):
    name = "litert_benchmark_model"
    formats = ("tflite",)
    binary_key = "benchmark_model"

    def command(self, ctx: RunContext, job, model_path: str) -> str:
        binary = device_binary(ctx, self.binary_key, "LiteRT benchmark_model binary")
        self._binary = binary
        threads = job.threads or min(4, getattr(ctx.info, "cores", 0) or 4)
        argv = [binary, f"--graph={model_path}", f"--num_threads={threads}",
                f"--warmup_runs={job.warmup}", f"--num_runs={job.runs}", "--min_secs=0",
                "--warmup_min_secs=0", f"--max_secs={int(job.timeout_s)}",
                "--use_xnnpack=true", "--report_peak_memory_footprint=true"]
        if job.precision == "fp16":
            argv.append("--xnnpack_force_fp16=true")
        return (cd_prefix(ctx.spec.workdir) + sleep_prefix(job.cooldown_s)
                + env_prefix(dict(ctx.spec.env)) + affinity_prefix(ctx) + quote_argv(argv))

    def parse(self, stdout: str, stderr: str, job) -> Dict[str, object]:
        out = parse_benchmark_model_output(stdout + "\n" + stderr)
        out.setdefault("threads", job.threads)
        out["warmup"] = job.warmup
        out["engine_version"] = "benchmark_model (native)"
        out["extra"]["binary"] = getattr(self, "_binary", None)
        return out
