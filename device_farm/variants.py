"""What a benchmarked file is: its model, format, precision, pruned/sparse, and the
conversion report it came from.

Why this matters: a report cell is worth what its label is worth. Labels used
to come from file names and the TFLite quantization flag, so ``x.fp16.mnn`` and
``x.int8.mnn`` both read "mnn fp32", and one cell of the report held several
files. Here:

* the precision comes from the file's own bytes (``file_facts``) and the
  conversion report that lists the file (matched by name *and* size, so a
  report rewritten by a later conversion of another precision is not believed);
  never from the name alone. When both speak and agree, the report's name is
  used; when they disagree the bytes win (they are what runs) and the label
  says what the report claimed (``mnn fp32 (report says int8)``);
* the files of one conversion (``x.optimized.onnx``, ``x.tflite``,
  ``x.fp16.tflite``, ``x.int8.mnn``, ``x.pruned.onnx``) share one model name:
  the report's ``name``, else the file name without its format and the
  converter's suffixes (``.optimized``, ``.pruned``, ``.<precision>``);
* pruning comes from the report (``pruning``), sparsity from the file or the
  report's per-layer sparsity.
"""
from __future__ import annotations

import glob
import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

from device_farm.file_facts import read_facts

#: the converter's precision names (converters.backends.PRECISIONS) and legacy spellings
_PRECISION_SUFFIX = re.compile(
    r"\.(fp32|fp16|int8|int8_weights|int4_weights|bf16)$|[-_.](int8|uint8|fp16|fp32|float16|"
    r"float32|q8|quant(ized)?)$", re.I)
_STAGE_SUFFIX = re.compile(r"\.(optimized|pruned)$", re.I)

_REPORTS: Dict[Tuple[str, int], Optional[dict]] = {}
_REPORTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Variant:
    """A model file as the farm reports it."""

    model: str                    # the conversion's name (files of one conversion share it)
    format: str                   # tflite, mnn, onnx
    precision: str                # fp32, fp16, int8_weights, int4_weights, int8, unknown
    precision_source: str         # "report", "file" or "legacy" (an old row, file gone)
    file_precision: str           # what the file's bytes say
    sparse: bool = False
    pruned: bool = False
    report: Optional[str] = None  # the conversion report that lists the file
    evidence: str = ""
    report_precision: Optional[str] = None   # what the report claims, when the file disagrees

    def label(self, runtime: str = "auto") -> str:
        """``tflite fp16``, ``mnn fp32 pruned``, ``mnn fp16 @fp32`` (runtime precision)."""
        parts = [self.format, self.precision if self.precision != "unknown"
                 else "precision unknown"]
        parts += [w for w, on in (("pruned", self.pruned), ("sparse", self.sparse)) if on]
        if runtime not in (None, "", "auto"):
            parts.append(f"@{runtime}")
        if self.report_precision:
            parts.append(f"(report says {self.report_precision})")
        return " ".join(parts)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "Variant":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)  # type: ignore[arg-type]


def model_name(file_name: str) -> str:
    """The model a file belongs to, by name: ``x.fp16.tflite`` -> ``x`` (grouping only)."""
    stem = os.path.splitext(os.path.basename(file_name))[0]
    for pattern in (_PRECISION_SUFFIX, _STAGE_SUFFIX, _PRECISION_SUFFIX):
        stem = pattern.sub("", stem) or stem
    return stem


def describe_file(path: str, fmt: str, size: int) -> Variant:
    """The variant of a model file: its report if one lists it, else its own bytes."""
    facts = read_facts(path, fmt)
    found = find_report(path, size)
    if found is None:
        return Variant(model=model_name(path), format=fmt, precision=facts.precision,
                       precision_source="file", file_precision=facts.precision,
                       sparse=facts.sparse, evidence=facts.why)
    report_path, report, entry = found
    pruned = report.get("pruning") is not None
    layers = ((entry.get("details") or {}).get("sparsity") or {}).get("layers") or []
    sparse = facts.sparse or any(isinstance(r, dict) and r.get("runs") == "sparse"
                                 for r in layers)
    precision, source, evidence, claimed = facts.precision, "file", facts.why, None
    said = str(entry.get("precision") or "")
    if said and (said == facts.precision or facts.precision == "unknown"):
        precision, source = said, "report"
    elif said:   # the bytes win: they are what runs (e.g. layers a converter left float)
        claimed = said
        evidence = (f"the conversion report says {said}, but the file holds "
                    f"{facts.precision}: {facts.why}")
    return Variant(model=str(report.get("name") or model_name(path)), format=fmt,
                   precision=precision, precision_source=source,
                   file_precision=facts.precision, sparse=sparse, pruned=pruned,
                   report=report_path, evidence=evidence, report_precision=claimed)


def find_report(path: str, size: int) -> Optional[Tuple[str, dict, dict]]:
    """(report path, report, its entry for the file) of a conversion report in the file's
    folder that lists this file by name with this size; None if none does."""
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    for report_path in sorted(glob.glob(os.path.join(glob.escape(folder), "*.report.json"))):
        report = _load_report(report_path)
        if report is None:
            continue
        entries = [t for t in report.get("targets") or [] if isinstance(t, dict)]
        optimized = report.get("optimized")
        if isinstance(optimized, dict):
            entries.append({"path": optimized.get("path"), "size_bytes":
                            optimized.get("size_bytes")})
        for entry in entries:
            if (isinstance(entry.get("path"), str) and os.path.basename(entry["path"]) == name
                    and entry.get("size_bytes") == size):
                return report_path, report, entry
    return None


def _load_report(path: str) -> Optional[dict]:
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    with _REPORTS_LOCK:
        if (path, stamp) in _REPORTS:
            return _REPORTS[(path, stamp)]
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        if not isinstance(report, dict):
            report = None
    except (OSError, ValueError):
        report = None   # not a conversion report: the file's bytes decide
    with _REPORTS_LOCK:
        _REPORTS[(path, stamp)] = report
    return report


def variant_of_row(row: Dict[str, object]) -> Variant:
    """The variant of a stored result row. Rows from a store of schema version 1 have
    none: the file is read again if it is still there with the same sha256, else the
    row's own columns give a variant marked ``legacy`` (its precision then comes from
    the old TFLite quantization flag only, or is unknown)."""
    if row.get("variant_json"):
        return Variant.from_dict(json.loads(str(row["variant_json"])))
    path, fmt = str(row.get("model_path") or ""), str(row.get("format") or "")
    if path and os.path.isfile(path):
        from edgert.files import file_sha256

        if file_sha256(path) == row.get("model_sha256"):
            return describe_file(path, fmt, os.path.getsize(path))
    old = row.get("model_precision")
    precision = "int8" if old == "int8" else "unknown"
    return Variant(model=model_name(str(row.get("model_name") or path)), format=fmt,
                   precision=precision, precision_source="legacy", file_precision=precision,
                   evidence="a row of an older results store whose file is gone or changed")
