"""Measuring latency: what the search asks of a device, and the host's own meter.

A *meter* is any object with ``description`` and
``measure(paths, label) -> {path: mapping}``, each mapping holding at least ``ok``
and, when ok, ``min_ms`` and ``median_ms`` (and ``latencies_ms`` when the runner
keeps them), plus where the number lives (``run_id``, ``job_key``, ``device``).
The device farm's meter (``device_farm.latency_meter.FarmMeter``) runs each batch
as one farm run on the named device and stores every row; the search does not
import the farm (the two packages stand side by side), the CLI hands it in.

A meter raises ``MeterError`` when the device stopped serving in the middle of a
batch (or any ``EdgertError`` with a ``done`` dict, as the farm's ``DeviceDropped``);
the measurements it did finish travel with the error, so a resumed search does not
redo them.

``statistic`` picks the number the search works with. ``min`` (default): on a
device shared with other work, interference only ever adds time, so the fastest
of N runs is the model's own cost and the most repeatable figure (measured here
under a load average of 10 on 2 cores: minima of one file in separate processes
within 3 %, medians up to 40 % apart). ``median`` is the typical latency, for a
device the search has to itself; ``p10`` is between.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgert.errors import EdgertError

STATISTICS = ("min", "p10", "median")


class MeterError(EdgertError):
    """The device stopped answering during a batch; ``done`` holds what was measured."""

    def __init__(self, message: str, done: Optional[Dict[str, Mapping[str, Any]]] = None
                 ) -> None:
        super().__init__(message)
        self.done = dict(done or {})


@dataclass
class Measurement:
    """One file's latency on the device."""

    path: str
    ok: bool
    latency_ms: Optional[float] = None
    min_ms: Optional[float] = None
    median_ms: Optional[float] = None
    error: str = ""
    where: Dict[str, Any] = field(default_factory=dict)     # run_id, job_key, device

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measurement":
        return cls(**{k: d[k] for k in ("path", "ok", "latency_ms", "min_ms", "median_ms",
                                        "error", "where") if k in d})

    @classmethod
    def from_meter(cls, path: str, d: Mapping[str, Any], statistic: str) -> "Measurement":
        """From a meter's mapping, with ``statistic`` as the latency."""
        if not d.get("ok"):
            return cls(path, False, error=str(d.get("error") or "not measured"),
                       where=_where(d))
        return cls(path, True, pick(d, statistic), _num(d.get("min_ms")),
                   _num(d.get("median_ms")), where=_where(d))


def pick(d: Mapping[str, Any], statistic: str) -> Optional[float]:
    """The ``statistic`` of one measurement mapping."""
    if statistic == "p10":
        lat = d.get("latencies_ms") or []
        if lat:
            return float(np.percentile(np.asarray(lat, dtype=np.float64), 10))
        return _num(d.get("min_ms"))
    return _num(d.get(f"{statistic}_ms"))


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) else None


def _where(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: d[k] for k in ("run_id", "job_key", "device") if k in d}


class HostMeter:
    """This machine, in this process (``edgert.load(...).benchmark``): the meter of the
    Python API when no device is named, and of the tests.

    The files of a batch are timed in ``rounds`` interleaved rounds (order reversed
    every other round, sessions kept open), each file's runs pooled over the rounds: a
    burst of other work then lands on several files' rounds instead of on all of one
    file's runs (measured on this 2-core host under other engineers' test suites: one
    file's minimum moved 10 % between back-to-back batches timed in one block)."""

    def __init__(self, threads: Optional[int] = 1, runs: int = 50, warmup: int = 5,
                 rounds: int = 3) -> None:
        self.threads, self.runs, self.warmup = threads, runs, warmup
        self.rounds = max(1, rounds)
        self.description = (f"this host, in process ({threads or 'default'} thread(s), "
                            f"{runs} runs in {self.rounds} interleaved rounds)")

    def measure(self, paths: Sequence[str], label: str = "") -> Dict[str, Dict[str, Any]]:
        import edgert

        out: Dict[str, Dict[str, Any]] = {}
        sessions: Dict[str, Any] = {}
        lat: Dict[str, List[float]] = {}
        try:
            for path in paths:
                precision = "fp32" if str(path).endswith(".mnn") else "auto"
                try:
                    sessions[path] = edgert.load(path, threads=self.threads,
                                                 precision=precision)
                except EdgertError as exc:
                    out[path] = {"ok": False, "error": str(exc)}
            order = list(sessions)
            per = max(1, -(-self.runs // self.rounds))
            for r in range(self.rounds):
                for path in (order if r % 2 == 0 else order[::-1]):
                    if path in out:
                        continue
                    try:
                        res = sessions[path].benchmark(runs=per, warmup=self.warmup)
                    except EdgertError as exc:
                        out[path] = {"ok": False, "error": str(exc)}
                        continue
                    lat.setdefault(path, []).extend(res.latencies_ms)
        finally:
            for sess in sessions.values():
                sess.close()
        for path, values in lat.items():
            if path not in out:
                arr = np.asarray(values, dtype=np.float64)
                out[path] = {"ok": True, "min_ms": float(arr.min()),
                             "median_ms": float(np.median(arr)), "latencies_ms": values,
                             "device": "host"}
        return out


def measure_all(meter: Any, paths: List[str], label: str, statistic: str
                ) -> Dict[str, Measurement]:
    """``meter.measure`` as Measurements; a MeterError keeps the finished ones."""
    try:
        raw = meter.measure(paths, label)
    except EdgertError as exc:
        # a meter from a package that cannot import this one (the farm's DeviceDropped)
        # says "device gone" the same way: an EdgertError carrying ``done``
        if not isinstance(exc, MeterError) and not isinstance(getattr(exc, "done", None), dict):
            raise
        done = {p: Measurement.from_meter(p, d, statistic) for p, d in exc.done.items()}
        raise MeterError(str(exc), done) from None
    return {p: Measurement.from_meter(p, raw.get(p, {"ok": False, "error": "no result"}),
                                      statistic) for p in paths}
