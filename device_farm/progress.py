"""Live progress of a farm run: one line per device (rich), or plain log lines
when the output is not a terminal (CI logs, tests).

Both consume the scheduler's events; neither can stop a run (the scheduler
drops exceptions raised by a display).
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Dict, Optional, TextIO

from device_farm.locks import describe_holder
from device_farm.scheduler import Event


@dataclass
class DeviceLine:
    status: str = "queued"
    total: int = 0
    done: int = 0
    failed: int = 0
    not_run: int = 0
    current: str = ""
    last: str = ""


class ProgressModel:
    """Per-device state folded from events (what both displays show)."""

    def __init__(self) -> None:
        self.lines: Dict[str, DeviceLine] = {}
        self._lock = threading.Lock()

    def update(self, ev: Event) -> None:
        with self._lock:
            line = self.lines.setdefault(str(ev["device"]), DeviceLine())
            kind = ev["kind"]
            if kind == "device_queued":
                line.total = int(ev["total"])
                line.done = int(ev["skipped"])
                line.last = f"{ev['skipped']} done earlier" if ev["skipped"] else ""
            elif kind == "device_connecting":
                line.status = "connecting"
            elif kind == "device_waiting":
                line.status = "waiting"
                line.last = f"busy: {describe_holder(ev.get('holder') or {})}"[:100]
            elif kind == "device_ready":
                line.status = "online"
            elif kind == "device_failed":
                line.status = "unavailable"
                line.last = str(ev["error"])[:80]
            elif kind == "job_start":
                line.status, line.current = "running", str(ev["job"])
            elif kind == "retry":
                line.status = f"retry {ev['attempt']}"
            elif kind == "job_done":
                line.done += 1
                ms = ev.get("median_ms") if ev.get("median_ms") is not None else ev.get("mean_ms")
                line.last = f"{ev['job']}: {ms:.3g} ms" if ms is not None else str(ev["job"])
                if ev.get("throttled"):
                    line.last += " (throttled)"
                line.status, line.current = "online", ""
            elif kind == "job_failed":
                line.done += 1
                line.failed += 1
                line.last = f"{ev['job']}: {str(ev['error'])[:60]}"
                line.status, line.current = "online", ""
            elif kind == "job_not_run":
                line.done += 1
                line.not_run += 1
            elif kind == "device_done":
                line.status = "dropped" if ev.get("dropped") else (
                    line.status if line.status == "unavailable" else "done")


class PlainProgress:
    """One log line per event that matters, to a text stream."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stderr
        self.model = ProgressModel()

    def __call__(self, ev: Event) -> None:
        self.model.update(ev)
        kind, dev = ev["kind"], ev["device"]
        text = {
            "device_ready": lambda: f"{dev}: online",
            "device_failed": lambda: f"{dev}: {ev['error']}",
            "job_start": lambda: f"{dev}: running {ev['job']}",
            "retry": lambda: f"{dev}: retry {ev['attempt']} after: {ev['error']}",
            "job_done": lambda: f"{dev}: {self.model.lines[str(dev)].last}",
            "job_failed": lambda: f"{dev}: FAILED {ev['job']}: {ev['error']}",
            "device_waiting": lambda: f"{dev}: waiting: {self.model.lines[str(dev)].last}",
            "device_done": lambda: f"{dev}: dropped: {ev['dropped']}" if ev.get("dropped")
            else f"{dev}: done",
        }.get(str(kind))
        if text:
            print(f"[farm] {text()}", file=self.stream, flush=True)

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass


class LiveProgress:
    """A rich live table, one row per device, refreshed as events arrive."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.model = ProgressModel()
        self._live = Live(self._table(), console=Console(stderr=True), refresh_per_second=4,
                          transient=False)

    def table(self):
        """The current progress as a rich Table."""
        return self._table()

    def _table(self):
        from rich.table import Table
        from rich.text import Text

        t = Table(title="farm", title_justify="left")
        for col in ("device", "status", "jobs", "running", "last"):
            t.add_column(col, overflow="fold")
        for name, ln in sorted(self.model.lines.items()):
            jobs = f"{ln.done}/{ln.total}" + "".join(
                f" ({n} {what})" for n, what in ((ln.failed, "failed"), (ln.not_run, "not run"))
                if n)
            # Text, not markup: "net [onnx fp32]" must not read as a rich style tag
            t.add_row(*(Text(c) for c in (name, ln.status, jobs, ln.current, ln.last)))
        return t

    def __call__(self, ev: Event) -> None:
        self.model.update(ev)
        self._live.update(self._table())

    def __enter__(self) -> "LiveProgress":
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)


def make_progress(kind: str = "auto"):
    """``live`` (rich), ``plain`` (log lines), ``none``; ``auto``: live on a terminal."""
    if kind == "auto":
        kind = "live" if sys.stderr.isatty() else "plain"
    if kind == "live":
        try:
            return LiveProgress()
        except ImportError:
            kind = "plain"
    if kind == "plain":
        return PlainProgress()
    return None
