"""Progress for long commands: what runs now and for how long, then where the time went.

On a terminal (stderr is a TTY, no ``--json``) a rich status line shows the stage
running with its elapsed seconds, and each finished stage stays as a line above it
(``✓ export  22.8 s``). Anywhere else nothing is drawn: pipes, logs and ``--json``
get no control characters. Either way ``breakdown()`` gives the per-stage times for
the command's closing lines.

    progress = Progress.for_args(args)
    with progress:
        with progress.step("loading"):
            ...
        convert(..., on_stage=progress.stage)      # the conversion flow's own stages
    print(progress.breakdown())
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple


class _Elapsed:
    """A status text whose seconds count up each time rich redraws it."""

    def __init__(self, label: str) -> None:
        self.label, self.started = label, time.perf_counter()

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(f"{self.label}  {time.perf_counter() - self.started:.1f} s")


class Progress:
    """Stages with elapsed time (drawn only when ``enabled``) and their timing record."""

    # the flow's stages as a person reads them when it verifies: each target is run by
    # verification as soon as it is written (inside ``convert``), ``verify`` compares
    VERIFYING_LABELS = {"convert": "convert and run", "verify": "compare"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage_labels: Dict[str, str] = {}      # flow stage name -> label shown
        self.times: List[Tuple[str, float]] = []
        self.started = time.perf_counter()
        self._status: Any = None
        self._running: Optional[Tuple[str, float]] = None
        self.console: Any = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    @classmethod
    def for_args(cls, args: Any) -> "Progress":
        """Drawn on a terminal; quiet for pipes, files and ``--json``."""
        return cls(enabled=sys.stderr.isatty() and not getattr(args, "json", False))

    def start(self, label: str) -> None:
        self._running = (label, time.perf_counter())
        if not self.enabled:
            return
        if self._status is None:
            self._status = self.console.status(_Elapsed(label))
            self._status.start()
        else:
            self._status.update(_Elapsed(label))

    def done(self, seconds: Optional[float] = None) -> None:
        if self._running is None:
            return
        label, t0 = self._running
        self._running = None
        seconds = time.perf_counter() - t0 if seconds is None else seconds
        self.times.append((label, seconds))
        if self.enabled:
            from rich.markup import escape

            self.console.print(f"[green]✓[/green] {escape(label)}  {seconds:.1f} s",
                               highlight=False)

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        """One stage of a command: shown while it runs, timed when it ends."""
        self.start(label)
        try:
            yield
        finally:
            self.done()

    def stage(self, name: str, variant: Optional[str], seconds: Optional[float]) -> None:
        """The conversion flow's listener (``convert(on_stage=...)``)."""
        name = self.stage_labels.get(name, name)
        label = f"{name} [{variant}]" if variant else name
        if seconds is None:
            self.start(label)
        else:
            self.done(seconds)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def breakdown(self, total: Optional[float] = None, minimum: float = 0.05) -> str:
        """``time: export 22.8 s, convert 3.1 s, ... (total 27.0 s)``: the stages that
        took at least ``minimum`` seconds, in order, the rest summed."""
        return timing_line(self.times, time.perf_counter() - self.started
                           if total is None else total, minimum)


def timing_line(times: List[Tuple[str, float]], total: float, minimum: float = 0.05) -> str:
    """The closing timing line of a command (see ``Progress.breakdown``)."""
    shown = [(k, v) for k, v in times if v >= minimum]
    rest = total - sum(v for _, v in shown)       # short stages, imports, start-up
    parts = [f"{k} {v:.1f} s" for k, v in shown]
    if rest >= 0.05:
        parts.append(f"other {rest:.1f} s")
    return f"time: {', '.join(parts) or 'all stages under 0.1 s'} (total {total:.1f} s)"


# The dynamo exporter's share of a conversion above which the closing lines suggest the
# TorchScript exporter (ResNet-50 on a 2-core host: dynamo 22.8 s, TorchScript 5.6 s).
SLOW_EXPORT_SECONDS = 10.0


def exporter_hint(report: Any) -> Optional[str]:
    """A hint when the dynamo export took most of a long conversion, else None."""
    source = report.source
    export_s = report.stages.get("export", 0.0)
    if source.get("exporter") != "dynamo" or export_s < SLOW_EXPORT_SECONDS:
        return None
    return (f"hint: the dynamo exporter took {export_s:.1f} s of {report.seconds:.1f} s; "
            f"--exporter torchscript is often several times faster for CNNs (check the "
            f"verification still passes)")
