"""Result rows -> report cells: one cell is one file on one device in one run.

Everything the report shows (tables, charts, the JSON beside them) is drawn
from the list ``build_cells`` returns, so a table and a chart cannot disagree,
and every cell carries the job id, the file and its sha256 it came from.

A cell's place is (run, model, variant, device). Two different files that would
land on one place (two conversions named alike in different folders, say) get
their variant labels extended with the file's folder and name, so a place never
holds two files. A cell's value is the median latency, or the mean where a
native tool prints no median (``stat`` says which).

Speed-ups are against a chosen baseline (``Baseline``): the same format's fp32
file on the same device (``fp32``, the default), one variant on the same device
(``variant:onnx fp32``), or the same variant on a reference device
(``device:pixel7``).
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from device_farm.variants import Variant, variant_of_row
from edgert.errors import EdgertError

_FORMAT_ORDER = {"onnx": 0, "tflite": 1, "mnn": 2}
_PRECISION_ORDER = {"fp32": 0, "bf16": 1, "fp16": 2, "int8_weights": 3, "int4_weights": 4,
                    "int8": 5}


@dataclass
class Cell:
    run_id: str
    job_key: str
    device: str
    model: str
    variant: str
    file: str
    path: str
    sha256: str
    status: str
    error: str = ""
    stat: str = ""                       # "median", "mean" (no median printed) or ""
    value_ms: Optional[float] = None
    latencies: List[float] = field(default_factory=list)
    metrics: Dict[str, Optional[float]] = field(default_factory=dict)
    throttled: bool = False
    warnings: List[str] = field(default_factory=list)
    engine: str = ""
    threads: Optional[int] = None
    runs: Optional[int] = None
    precision_source: str = ""
    report_path: Optional[str] = None
    evidence: str = ""
    speedup: Optional[float] = None
    baseline_job: Optional[str] = None
    info: Optional[Variant] = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return f"{self.run_id}/{self.job_key}"

    @property
    def place(self) -> Tuple[str, str, str, str]:
        return (self.run_id, self.model, self.variant, self.device)

    def to_dict(self) -> Dict[str, object]:
        d = {k: v for k, v in self.__dict__.items() if k != "info"}
        d["id"] = self.id
        return d


_METRICS = ("min_ms", "median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "max_ms",
            "init_ms", "first_run_ms", "peak_rss_mb")


def cell_of(row: Dict[str, object]) -> Cell:
    variant = variant_of_row(row)
    latencies = [float(x) for x in json.loads(str(row.get("latencies_json") or "[]"))]
    median, mean = row.get("median_ms"), row.get("mean_ms")
    ok = row["status"] == "ok"
    stat, value = "", None
    if ok and median is not None:
        stat, value = "median", float(median)      # type: ignore[arg-type]
    elif ok and mean is not None:
        stat, value = "mean", float(mean)          # type: ignore[arg-type]
    return Cell(
        run_id=str(row["run_id"]), job_key=str(row["job_key"]), device=str(row["device"]),
        model=variant.model, variant=variant.label(str(row.get("precision") or "auto")),
        file=str(row.get("model_name") or ""), path=str(row.get("model_path") or ""),
        sha256=str(row.get("model_sha256") or ""), status=str(row["status"]),
        error=str(row.get("error") or ""), stat=stat, value_ms=value,
        latencies=latencies if ok else [],
        metrics={k: row.get(k) for k in _METRICS},  # type: ignore[misc]
        throttled=bool(row.get("throttled")),
        warnings=json.loads(str(row.get("warnings_json") or "[]")),
        engine=str(row.get("engine_version") or row.get("engine") or ""),
        threads=row.get("threads"), runs=row.get("runs"),  # type: ignore[arg-type]
        precision_source=variant.precision_source, report_path=variant.report,
        evidence=variant.evidence, info=variant)


def build_cells(rows: Sequence[Dict[str, object]]) -> List[Cell]:
    """One cell per row (the store's latest row per job), each at its own place."""
    cells = [cell_of(r) for r in rows]
    places: Dict[Tuple[str, str, str, str], List[Cell]] = OrderedDict()
    for c in cells:
        places.setdefault(c.place, []).append(c)
    for same in places.values():
        if len({c.sha256 for c in same}) > 1:
            for c in same:
                folder = os.path.basename(os.path.dirname(c.path))
                c.variant = f"{c.variant} [{folder + '/' if folder else ''}{c.file}]"
    seen = set()
    for c in cells:
        if c.place in seen:   # the same file twice at one place: a second run in --all-runs
            raise EdgertError(f"two results for {c.place}: one cell must be one file")
        seen.add(c.place)
    cells.sort(key=_order)
    return cells


def _order(c: Cell):
    v = c.info
    return (c.run_id, c.model.lower(), _FORMAT_ORDER.get(v.format if v else "", 9),
            _PRECISION_ORDER.get(v.precision if v else "", 9), c.variant, c.device)


@dataclass(frozen=True)
class Baseline:
    """What a speed-up is measured against (see the module docstring)."""

    kind: str            # "fp32", "variant" or "device"
    value: str = ""

    @classmethod
    def parse(cls, text: Optional[str]) -> "Baseline":
        text = (text or "fp32").strip()
        if text in ("fp32", "precision:fp32"):
            return cls("fp32")
        kind, sep, value = text.partition(":")
        if sep and kind in ("variant", "device") and value.strip():
            return cls(kind, value.strip())
        raise EdgertError(f"baseline {text!r}: use fp32, variant:LABEL (e.g. "
                          "'variant:onnx fp32') or device:NAME")

    def short(self) -> str:
        return {"fp32": "fp32", "variant": self.value, "device": self.value}[self.kind]

    def describe(self) -> str:
        return {"fp32": "the same format's fp32 file on the same device",
                "variant": f"{self.value} on the same device",
                "device": f"the same file on {self.value}"}[self.kind]

    def find(self, cell: Cell, cells: Sequence[Cell]) -> Optional[Cell]:
        same_run = [c for c in cells if c.run_id == cell.run_id and c.model == cell.model]
        if self.kind == "device":
            found = [c for c in same_run if c.device == self.value and c.variant == cell.variant]
        elif self.kind == "variant":
            found = [c for c in same_run if c.device == cell.device and c.variant == self.value]
        else:
            v = cell.info
            found = [c for c in same_run if c.device == cell.device and v is not None
                     and c.info is not None and c.info.format == v.format
                     and c.info.precision == "fp32" and not c.info.pruned
                     and not c.info.sparse and _runtime(c) == _runtime(cell)]
            if len(found) > 1:   # several conversions of the name: the one in the same folder
                found = [c for c in found
                         if os.path.dirname(c.path) == os.path.dirname(cell.path)]
        return found[0] if len(found) == 1 else None


def _runtime(c: Cell) -> str:
    return next((w for w in c.variant.split() if w.startswith("@")), "")


def add_speedups(cells: Sequence[Cell], baseline: Baseline) -> None:
    """``speedup`` = baseline value / cell value (> 1: faster than the baseline)."""
    for c in cells:
        base = baseline.find(c, cells)
        if base is None or c.value_ms is None or base.value_ms is None or not c.value_ms:
            continue
        c.speedup = base.value_ms / c.value_ms
        c.baseline_job = base.id


def overview(cells: Sequence[Cell]) -> "OrderedDict[str, Tuple[List[str], List[str]]]":
    """{model: (variants in order, devices in order)} of the cells of one run."""
    out: "OrderedDict[str, Tuple[List[str], List[str]]]" = OrderedDict()
    for c in cells:
        variants, devices = out.setdefault(c.model, ([], []))
        if c.variant not in variants:
            variants.append(c.variant)
        if c.device not in devices:
            devices.append(c.device)
    for _, devices in out.values():
        devices.sort()
    return out


def index(cells: Sequence[Cell]) -> Dict[Tuple[str, str, str], Cell]:
    """(model, variant, device) -> cell, for the cells of one run."""
    return {(c.model, c.variant, c.device): c for c in cells}
