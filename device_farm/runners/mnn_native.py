"""MNN's native ``benchmark.out`` (phones without Python).

``benchmark.out MODELS_FOLDER LOOP WARMUP FORWARD THREADS PRECISION`` times every
``.mnn`` in a folder, so each model gets a folder of its own holding a link
named ``model.mnn`` (a plain name: the tool prints names with ``%-24s``, which a
name with spaces would break). The binary and its shared libraries
(``binaries.mnn_benchmark``, ``binaries.mnn_libs``) go through the device cache;
LD_LIBRARY_PATH points at the libraries' cache folders.

Output, as documented (older builds print ``45.885ms`` without the space):

    MNN benchmark
    Forward type: CPU thread=4 precision=2 sparsity=0 sparseBlockOC=1 testQuantizedModel=0
    --------> Benchmarking... loop = 20, warmup = 5
    [ - ] model.mnn                   max =   50.018 ms  min =   30.063 ms  avg =   31.592 ms

Only max/min/avg are printed: median, p90/p99, init time and memory stay empty.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from typing import Dict, List

from device_farm.runners import register_runner
from device_farm.runners.base import (
    RunContext, Runner, RunnerError, affinity_prefix, cd_prefix, device_binary, sleep_prefix)
from device_farm.transports.base import env_prefix, quote_argv

_LINE = re.compile(r"\[ - \]\s+(?P<name>\S+)\s+max =\s*(?P<max>[\d.]+)\s*ms\s+"
                   r"min =\s*(?P<min>[\d.]+)\s*ms\s+avg =\s*(?P<avg>[\d.]+)\s*ms")
_HEADER = re.compile(r"Forward type: \**(?P<fwd>\w+)\**\s*thread=(?P<threads>\d+)\**\s*"
                     r"precision=(?P<precision>\d+)")
_LOOP = re.compile(r"Benchmarking\.\.\. loop = (?P<loop>\d+)(?:, warmup = (?P<warmup>\d+))?")
#: edgert precision -> MNN BackendConfig precision (same mapping as edgert's MNN engine)
PRECISION = {"auto": 0, "fp32": 1, "fp16": 2}
_LINK = "model.mnn"


def parse_mnn_benchmark_output(text: str, model: str = _LINK) -> Dict[str, object]:
    """Latency fields (ms) of ``model`` from ``benchmark.out`` output."""
    rows = [m for m in _LINE.finditer(text) if m.group("name") == model]
    if not rows:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise RunnerError(f"MNN benchmark printed no result line for {model}: {tail!r}")
    m = rows[0]
    out: Dict[str, object] = {
        "min_ms": float(m.group("min")), "max_ms": float(m.group("max")),
        "mean_ms": float(m.group("avg")), "median_ms": None, "p90_ms": None, "p99_ms": None,
        "std_ms": None, "init_ms": None, "first_run_ms": None, "peak_rss_mb": None,
        "engine": "mnn", "extra": {}}
    head = _HEADER.search(text)
    if head:
        out["threads"] = int(head.group("threads"))
        out["extra"].update(forward=head.group("fwd"), mnn_precision=int(head.group("precision")))
    loop = _LOOP.search(text)
    if loop:
        out["runs"] = int(loop.group("loop"))
        if loop.group("warmup"):
            out["warmup"] = int(loop.group("warmup"))
    return out


@register_runner
class MNNBenchmark(Runner):
    name = "mnn_benchmark"
    formats = ("mnn",)

    def _libs(self, ctx: RunContext) -> List[str]:
        libs = ctx.spec.binaries.get("mnn_libs") or []
        if isinstance(libs, str):
            libs = [libs]
        return [lib[len("device:"):] if lib.startswith("device:")
                else ctx.cache.ensure(lib, mode="644") for lib in libs]

    def command(self, ctx: RunContext, job, model_path: str) -> str:
        binary = device_binary(ctx, "mnn_benchmark", "MNN benchmark.out binary")
        self._binary = binary
        lib_dirs = sorted({posixpath.dirname(p) for p in self._libs(ctx)})
        env = dict(ctx.spec.env)
        if lib_dirs:
            env["LD_LIBRARY_PATH"] = ":".join(lib_dirs + ([env["LD_LIBRARY_PATH"]]
                                                          if env.get("LD_LIBRARY_PATH") else []))
        folder = posixpath.join(ctx.spec.workdir, "mnn-runs", job.model.sha256[:32])
        threads = job.threads or min(4, getattr(ctx.info, "cores", 0) or 4)
        argv = [binary, folder, job.runs, job.warmup, 0, threads, PRECISION[job.precision]]
        q_folder = shlex.quote(folder)
        link = shlex.quote(posixpath.join(folder, _LINK))
        return (cd_prefix(ctx.spec.workdir) + f"mkdir -p {q_folder} && "
                f"ln -sf {shlex.quote(model_path)} {link} && " + sleep_prefix(job.cooldown_s)
                + env_prefix(env) + affinity_prefix(ctx) + quote_argv(argv))

    def parse(self, stdout: str, stderr: str, job) -> Dict[str, object]:
        out = parse_mnn_benchmark_output(stdout + "\n" + stderr)
        out.setdefault("threads", job.threads)
        out.setdefault("warmup", job.warmup)
        out["engine_version"] = "MNN benchmark.out (native)"
        out["extra"]["binary"] = getattr(self, "_binary", None)
        return out
