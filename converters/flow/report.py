"""What ``convert`` reports: per target (``TargetReport``) and for the whole
conversion (``ConversionReport``: ``summary()`` for people, ``to_dict()`` for
scripts, written as ``<name>.report.json``).

``stages`` holds each stage's wall time (converters/flow/stages.py). The JSON is
written by the last stage, ``write``, so it holds every stage before it, and
``seconds`` (the whole conversion) likewise stops where writing starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from converters.verify import TABLE_COLUMNS, Verification


@dataclass
class TargetReport:
    """One target's outcome: the file, what the backend said, the verification."""

    target: str
    precision: str
    path: Optional[str] = None
    size_bytes: int = 0
    op_counts: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)
    details: Dict[str, Any] = field(default_factory=dict)
    verification: Optional[Verification] = None
    error: Optional[str] = None
    error_type: Optional[str] = None
    _exception: Optional[BaseException] = field(default=None, repr=False)
    # (input set names, RunOutcome) of the run made as soon as the file was written
    _early_run: Optional[Any] = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and (self.verification is None or self.verification.passed)

    def to_dict(self) -> dict:
        return {"target": self.target, "precision": self.precision, "path": self.path,
                "size_bytes": self.size_bytes, "op_counts": dict(self.op_counts),
                "seconds": round(self.seconds, 4), "notes": list(self.notes),
                "details": self.details, "ok": self.ok, "error": self.error,
                "error_type": self.error_type,
                "verification": self.verification.to_dict() if self.verification else None}


@dataclass
class ConversionReport:
    """Everything ``convert`` did, for people (``summary()``) and scripts (``to_dict()``)."""

    name: str
    out_dir: str
    source: Dict[str, Any]
    optimized_path: str
    optimized_size: int
    passes: Any                            # converters.passes.PassReport
    targets: List[TargetReport]
    seconds: float = 0.0
    report_path: Optional[str] = None
    pruning: Optional[Any] = None          # converters.pruning.ChannelPruneReport
    stages: Dict[str, float] = field(default_factory=dict)   # stage name -> wall seconds
    precision: Dict[str, str] = field(default_factory=dict)  # asked, chosen, why
    # several precisions: each variant's own per-variant stage times
    variant_stages: Dict[str, Dict[str, float]] = field(default_factory=dict)
    verified: bool = True                  # False: verify=False, no verdict to give

    @property
    def variants(self) -> List[str]:
        """The precisions converted, in order (one unless several were asked)."""
        return list(dict.fromkeys(t.precision for t in self.targets))

    @property
    def verdict(self) -> str:
        """"PASSED", "FAILED" or "not verified" (verify=False: no verdict)."""
        if not self.verified:
            return "not verified" if all(t.error is None for t in self.targets) else "FAILED"
        return "PASSED" if self.ok else "FAILED"

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    def target(self, name: str) -> TargetReport:
        for t in self.targets:
            if t.target == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "out_dir": self.out_dir,
                "seconds": round(self.seconds, 3),
                "verified": self.verified,
                "stages": {k: round(v, 4) for k, v in self.stages.items()},
                "variant_stages": {p: {k: round(v, 4) for k, v in st.items()}
                                   for p, st in self.variant_stages.items()},
                "precision": dict(self.precision),
                "source": self.source,
                "optimized": {"path": self.optimized_path, "size_bytes": self.optimized_size},
                "passes": self.passes.to_dict(), "targets": [t.to_dict() for t in self.targets],
                "pruning": self.pruning.to_dict() if self.pruning is not None else None}

    def verification_rows(self) -> List[List[str]]:
        """The verification table's rows; with several precisions the target cell names
        the variant (``mnn int8``)."""
        several = len(self.variants) > 1
        rows = []
        for t in self.targets:
            for r in (t.verification.table_rows() if t.verification else []):
                rows.append([f"{r[0]} {t.precision}" if several else r[0]] + r[1:])
        return rows

    def summary(self) -> str:
        """A plain-text summary: sizes, op counts, pass effects, verification table."""
        src = self.source
        lines = [f"{self.name}: {src['kind']} source"
                 + (f" ({src['exporter']} exporter)" if src.get("exporter") else "")
                 + f", converted in {self.seconds:.2f} s -> {self.out_dir}"]
        if self.precision:
            lines.append(f"  precision: {self.precision['why']}")
        lines += [f"  note: {n}" for n in src.get("notes", [])]
        if self.pruning is not None:
            lines += ["  " + ln for ln in self.pruning.summary().splitlines()]
        lines.append(f"  optimized ONNX: {_size(self.optimized_size)}, "
                     f"{self.passes.nodes_before} -> {self.passes.nodes_after} nodes")
        lines.append(self.passes.summary())
        for t in self.targets:
            if t.error:
                lines.append(f"  {t.target} [{t.precision}]: FAILED: {t.error}")
                continue
            ops = ", ".join(f"{k} {v}" for k, v in sorted(t.op_counts.items(),
                                                          key=lambda kv: -kv[1])[:8])
            lines.append(f"  {t.target} [{t.precision}]: {t.path} ({_size(t.size_bytes)}, "
                         f"{t.seconds:.2f} s); ops: {ops}")
        rows = self.verification_rows()
        if rows:
            lines.append(_text_table(TABLE_COLUMNS, rows))
        lines.append("verification: " + self.verdict)
        return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(out)
