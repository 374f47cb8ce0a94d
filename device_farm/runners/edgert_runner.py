"""The board runner: edgert's own ``python -m edgert bench MODEL --json``.

It measures with the same timing protocol as ``Session.benchmark`` on the host,
so host and board numbers compare. Boards need only Python, numpy and one
engine: the edgert package travels as a zip through the device cache and is
imported via PYTHONPATH (the local device uses the running package directly).
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Dict, Optional

from device_farm.deploy import edgert_zip
from device_farm.runners import register_runner
from device_farm.runners.base import (
    RunContext, Runner, RunnerError, affinity_prefix, cd_prefix)
from device_farm.transports.base import env_prefix, quote_argv

_ENGINES_TIMEOUT_S = 120.0


def _pythonpath(ctx: RunContext) -> str:
    if ctx.spec.transport == "local":
        import edgert

        return os.path.dirname(os.path.dirname(os.path.abspath(edgert.__file__)))
    return ctx.cache.ensure(edgert_zip(), name="edgert.zip")


def runner_env(ctx: RunContext) -> Dict[str, str]:
    env = {"PYTHONPATH": _pythonpath(ctx),
           # the isolated-load verdicts stay inside the farm's workdir
           "EDGERT_CACHE_DIR": posixpath.join(ctx.spec.workdir, "state")}
    env.update(ctx.spec.env)
    return env


def device_engines(ctx: RunContext) -> Dict[str, str]:
    """Engines edgert finds on the device: {name: version} ({} without Python)."""
    if not ctx.spec.python:
        return {}
    cmd = cd_prefix(ctx.spec.workdir) + env_prefix(runner_env(ctx)) + quote_argv(
        [ctx.spec.python, "-m", "edgert", "engines", "--json"])
    res = ctx.transport.shell(cmd, timeout=_ENGINES_TIMEOUT_S)
    if res.exit_code != 0:
        return {}
    try:
        rows = json.loads(res.stdout)
    except ValueError:
        return {}
    return {r["engine"]: r["version"] for r in rows if r.get("available")}


@register_runner
class EdgertRunner(Runner):
    name = "edgert"
    formats = ("tflite", "mnn", "onnx")

    def available(self, ctx: RunContext) -> Optional[str]:
        if not ctx.spec.python:
            return "the device has no Python (python = \"\" in devices.toml)"
        if ctx.info is not None and not getattr(ctx.info, "python", ""):
            return (f"{ctx.spec.python!r} does not run on the device: install Python 3 with "
                    "numpy and an engine, set python = to its path, or use the native runners "
                    "(runners = { tflite = \"litert_benchmark_model\", mnn = \"mnn_benchmark\" })")
        return None

    def command(self, ctx: RunContext, job, model_path: str) -> str:
        argv = [ctx.spec.python, "-m", "edgert", "bench", model_path, "--json", "--latencies",
                "--runs", job.runs, "--warmup", job.warmup, "--precision", job.precision]
        if job.threads:
            argv += ["--threads", job.threads]
        if job.engine:
            argv += ["--engine", job.engine]
        if job.cooldown_s:
            argv += ["--cooldown", f"{job.cooldown_s:g}"]
        return (cd_prefix(ctx.spec.workdir) + env_prefix(runner_env(ctx))
                + affinity_prefix(ctx) + quote_argv(argv))

    def parse(self, stdout: str, stderr: str, job) -> Dict[str, object]:
        return parse_bench_json(stdout)


def parse_bench_json(stdout: str) -> Dict[str, object]:
    """The BenchmarkResult JSON object in ``edgert bench --json`` output."""
    start = stdout.find("{")
    if start < 0:
        raise RunnerError(f"edgert bench printed no JSON: {stdout.strip()[-500:]!r}")
    try:
        obj, _ = json.JSONDecoder().raw_decode(stdout[start:])
    except ValueError as exc:
        raise RunnerError(f"edgert bench printed unreadable JSON ({exc}): "
                          f"{stdout.strip()[-500:]!r}") from None
    missing = [k for k in ("median_ms", "runs", "engine") if k not in obj]
    if missing:
        raise RunnerError(f"edgert bench JSON lacks {', '.join(missing)}")
    return obj
