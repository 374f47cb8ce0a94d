"""What a runner is: how to benchmark one model on one device and read the answer.

A runner deploys what it needs through the device's cache, builds one shell
command (every argument quoted), and parses the output into the latency fields
of ``edgert.timing.BenchmarkResult`` (plus whatever extra the tool reports).
Parsing is a pure function of the text, so each parser is tested on the
documented output of its tool.
"""
from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

from device_farm.errors import DeviceError


class RunnerError(DeviceError):
    """A runner could not run or its output could not be read."""


@dataclass
class RunContext:
    """A connected device, as runners see it."""

    spec: object          # inventory.DeviceSpec
    transport: object     # transports.Transport
    cache: object         # deploy.DeployCache
    info: object = None   # probes.DeviceInfo


class Runner(ABC):
    """One way of benchmarking a model on a device."""

    name: ClassVar[str] = ""
    formats: ClassVar[Tuple[str, ...]] = ()

    def available(self, ctx: RunContext) -> Optional[str]:
        """None when this runner can work on the device, else why not."""
        return None

    @abstractmethod
    def command(self, ctx: RunContext, job, model_path: str) -> str:
        """The shell command that benchmarks ``model_path`` (already on the device)."""

    @abstractmethod
    def parse(self, stdout: str, stderr: str, job) -> Dict[str, object]:
        """Latency fields (ms) from the tool's output; raise RunnerError when absent."""

    def prepare(self, ctx: RunContext, job) -> str:
        """Deploy what the job needs (model, tool) and return its shell command."""
        reason = self.available(ctx)
        if reason:
            raise RunnerError(f"runner {self.name} cannot run on {ctx.spec.name}: {reason}")
        model_path = ctx.cache.ensure(job.model.path, name=job.model.name, sha=job.model.sha256)
        return self.command(ctx, job, model_path)


def cd_prefix(workdir: str) -> str:
    return f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)} && "


def affinity_prefix(ctx: RunContext) -> str:
    """``taskset MASK `` when the device has a CPU mask (big cores, say)."""
    mask = getattr(ctx.spec, "cpu_mask", None)
    if not mask:
        return ""
    mask = mask[2:] if mask.lower().startswith("0x") else mask
    return f"taskset {shlex.quote(mask)} "


def sleep_prefix(cooldown_s: float) -> str:
    """A cool-down pause for tools that have no flag for one."""
    return f"sleep {float(cooldown_s):g} && " if cooldown_s and cooldown_s > 0 else ""


def device_binary(ctx: RunContext, key: str, what: str) -> str:
    """Path on the device of a tool named in ``binaries.<key>`` (pushed through the cache
    when it is a host file, used as is when written ``device:/path``)."""
    import os

    value = ctx.spec.binaries.get(key)
    if not value:
        raise RunnerError(f"device {ctx.spec.name}: no {what}; set binaries.{key} in "
                          "devices.toml (see docs/DEVICES.md for where to get it)")
    if isinstance(value, list):
        raise RunnerError(f"device {ctx.spec.name}: binaries.{key} must be one path")
    if value.startswith("device:"):
        return value[len("device:"):]
    if not os.path.isfile(value):
        raise RunnerError(f"device {ctx.spec.name}: binaries.{key} = {value}: no such file")
    return ctx.cache.ensure(value, mode="755")
