"""Provenance: what made a table, when, and from what.

A table travels from a training box to a build server to a phone; when a model
misbehaves the first question is "where did these numbers come from?". Every
table carries the answer, written by the producer that made it.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from edgert.files import file_sha256


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _tool_version() -> str:
    try:
        from edgert import __version__
        return f"edgert {__version__}"
    except ImportError:  # quant_tables used on its own
        return "edgert"


@dataclass
class Provenance:
    """Who made a table (``producer``), when (``created``, UTC ISO 8601) and from what."""

    producer: str = "manual"            # e.g. "qat_torch", "qdq_onnx", "calibrate", "aimet", "tensorrt"
    created: str = field(default_factory=utc_now)
    source: str = ""                    # the model or file it was made from
    method: Optional[str] = None        # e.g. "entropy", "percentile(99.99)", "torch.ao QAT x86"
    tool: str = field(default_factory=_tool_version)
    source_sha256: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_file(cls, producer: str, path: str, method: Optional[str] = None,
                 **details: Any) -> "Provenance":
        sha = file_sha256(path) if os.path.isfile(path) else None
        return cls(producer=producer, source=os.path.basename(path), method=method,
                   source_sha256=sha, details=dict(details))

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"producer": self.producer, "created": self.created,
                             "source": self.source, "tool": self.tool}
        if self.method is not None:
            d["method"] = self.method
        if self.source_sha256:
            d["source_sha256"] = self.source_sha256
        if self.details:
            d["details"] = self.details
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Provenance":
        return cls(producer=d.get("producer", "unknown"), created=d.get("created", ""),
                   source=d.get("source", ""), method=d.get("method"),
                   tool=d.get("tool", ""), source_sha256=d.get("source_sha256"),
                   details=dict(d.get("details", {})))
