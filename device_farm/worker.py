"""One connected device running jobs: connect and probe, then per job read the
device state, run the job's runner, read the state again, and build the row.

Kept apart from the scheduler so that "how one job runs on one device" and
"how many devices run at once, and what happens when one drops" stay separate.
"""
from __future__ import annotations

import json
from typing import Dict, Optional

from device_farm.deploy import DeployCache
from device_farm.inventory import DeviceSpec
from device_farm.probes import STATE_SCRIPT, DeviceInfo, parse_state, probe_info, throttle_reasons
from device_farm.runners import RunContext, RunnerError, get_runner
from device_farm.runners.edgert_runner import device_engines
from device_farm.store import now_iso
from device_farm.transports import open_transport
from device_farm.transports.base import RemoteCommandError, TransportError
from device_farm.errors import DeviceError

_METRICS = ("init_ms", "first_run_ms", "min_ms", "median_ms", "p90_ms", "p99_ms", "mean_ms",
            "std_ms", "max_ms", "peak_rss_mb")
_LIVENESS_TIMEOUT_S = 10.0
_BEGIN, _END = "@@edgert-bench-begin", "@@edgert-bench-end"


class DeviceWorker:
    """A device and its link, cache and probed description."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.transport = open_transport(spec)
        self.cache = DeployCache(self.transport, spec.workdir)
        self.info: Optional[DeviceInfo] = None

    @property
    def ctx(self) -> RunContext:
        return RunContext(self.spec, self.transport, self.cache, self.info)

    def connect(self, engines: bool = True) -> DeviceInfo:
        """Reach the device and probe it; raise DeviceError when it cannot serve jobs."""
        try:
            info = probe_info(self.transport, self.spec.python or "python3")
        except RemoteCommandError as exc:
            raise DeviceError(
                f"device {self.spec.name}: the probe failed. The farm runs every command as "
                "`timeout -k 2 SECONDS sh -c ...` (coreutils or toybox timeout; an old busybox "
                f"that takes -t does not work): {exc}") from None
        if "timeout" not in info.tools:
            raise DeviceError(f"device {self.spec.name} has no `timeout` command (coreutils, "
                              "toybox or busybox); the farm needs it to bound every command")
        if self.spec.cpu_mask and "taskset" not in info.tools:
            raise DeviceError(f"device {self.spec.name} has a cpu_mask but no `taskset`")
        self.info = info
        if engines and self.spec.python:
            info.engines = device_engines(self.ctx)
        return info

    def alive(self) -> bool:
        """Whether the device answers a trivial command now."""
        try:
            return self.transport.shell("echo alive", timeout=_LIVENESS_TIMEOUT_S).stdout \
                .strip() == "alive"
        except TransportError:
            return False

    def reset_link(self) -> None:
        """Forget a link that failed, so the next call reconnects."""
        self.transport.reset()

    def close(self) -> None:
        self.transport.close()

    def run_job(self, job) -> Dict[str, object]:
        """Run one job; return the metric part of its result row.

        State before, the benchmark and state after go in one shell call (one round
        trip per job once the cache is warm); markers split the output.
        """
        runner = get_runner(job.runner)
        command = runner.prepare(self.ctx, job)
        script = (f"{STATE_SCRIPT}\necho {_BEGIN}\n( {command} )\nrc=$?\necho\n"
                  f"echo {_END} $rc\n{STATE_SCRIPT}\nexit $rc\n")
        res = self.transport.shell(script, timeout=job.timeout_s)
        head, _, rest = res.stdout.partition(_BEGIN + "\n")
        bench_out, mark, tail = rest.rpartition("\n" + _END)
        if not mark:
            raise RunnerError(f"{job.runner} on {self.spec.name}: output ended early "
                              f"(exit code {res.exit_code}): {_tail(res.stdout, res.stderr)}")
        if res.exit_code != 0:
            raise RunnerError(f"{job.runner} exited with code {res.exit_code} on "
                              f"{self.spec.name}: {_tail(bench_out, res.stderr)}")
        metrics = runner.parse(bench_out, res.stderr, job)
        before, after = parse_state(head), parse_state(tail)
        warnings = throttle_reasons(before, after)
        row: Dict[str, object] = {k: _num(metrics.get(k)) for k in _METRICS}
        row.update(
            engine=metrics.get("engine") or job.engine or "",
            engine_version=metrics.get("engine_version", ""),
            threads=metrics.get("threads") or job.threads,
            runs=metrics.get("runs") or job.runs,
            warmup=metrics.get("warmup", job.warmup),
            latencies_json=json.dumps(metrics.get("latencies_ms") or []),
            extra_json=json.dumps(metrics.get("extra") or {}),
            state_before_json=json.dumps(before), state_after_json=json.dumps(after),
            throttled=int(bool(warnings)), warnings_json=json.dumps(warnings),
            bench_s=res.duration_s)
        return row


def _tail(out: str, err: str, limit: int = 1500) -> str:
    return (err.strip() or out.strip())[-limit:] or "(no output)"


def _num(v) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) else None


def base_row(run_id: str, job, spec: DeviceSpec, info: Optional[DeviceInfo]) -> Dict[str, object]:
    """The identifying part of a result row (what ran where, with which settings, on
    which file: its sha256 and its variant)."""
    variant = job.model.describe()
    return dict(
        run_id=run_id, job_key=job.key, device=spec.name, transport=spec.transport,
        model_name=job.model.name, model_path=job.model.path, model_sha256=job.model.sha256,
        model_size=job.model.size, format=job.model.format, precision=job.precision,
        model_precision=variant.precision, variant_json=json.dumps(variant.to_dict()),
        model_group=variant.model, variant=variant.label(job.precision),
        engine=job.engine or "", runner=job.runner,
        threads=job.threads, runs=job.runs, warmup=job.warmup, cooldown_s=job.cooldown_s,
        cpu_mask=spec.cpu_mask, settings_json=json.dumps(job.settings()),
        device_json=json.dumps({"spec": spec.public_dict(),
                                "info": info.to_dict() if info else None}),
        started_at=now_iso())
