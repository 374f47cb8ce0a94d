"""What a search knows, saved after every batch so a stopped search resumes.

The search is a deterministic function of its configuration and of what it has
measured: every built file, evaluation and latency is kept by candidate key in
``SearchState.results``, and a resumed search re-runs its steps, taking from the
state whatever is already there (built files stay in ``<out>/candidates/<key>``).
Where the state is kept is a *log*: any object with ``search_id``, ``load()`` and
``save(state_dict)``. ``FileLog`` keeps it as JSON in the output folder; the device
farm's ``device_farm.search_store.FarmSearchLog`` keeps it in the farm's results
store beside the runs that measured it, where ``edgert optimize --resume`` and
``--compare`` find it.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from edgert.errors import EdgertError


def new_search_id() -> str:
    return time.strftime("optimize-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass
class Record:
    """One candidate: why it was made, its file, its accuracy, its latency."""

    candidate: List[List[Any]]
    kinds: List[str] = field(default_factory=list)     # uniform, probe, pair, front, repair, local
    label: str = ""
    built: Optional[Dict[str, Any]] = None
    build_error: Optional[str] = None
    evaluation: Optional[Dict[str, Any]] = None        # accuracy, samples, seconds, damage
    measurement: Optional[Dict[str, Any]] = None       # Measurement.to_dict()
    predicted_ms: Optional[float] = None
    #: the table's prediction (with the correction fitted to the batches measured
    #: before) made just before this candidate was measured: what the hit rate counts
    prior_ms: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Record":
        return cls(**d)


@dataclass
class SearchState:
    """Everything a search has learned (JSON-ready through ``to_dict``)."""

    search_id: str
    config: Dict[str, Any] = field(default_factory=dict)
    status: str = "running"          # running, stopped, done, infeasible
    elapsed_s: float = 0.0
    units: List[Dict[str, Any]] = field(default_factory=list)
    space: Optional[Dict[str, Any]] = None
    notes: List[str] = field(default_factory=list)
    results: Dict[str, Record] = field(default_factory=dict)
    runs: List[str] = field(default_factory=list)      # the farm runs that measured them
    table: Optional[Dict[str, Any]] = None
    chosen: Optional[str] = None
    summary: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "results"}
        d["results"] = {k: r.to_dict() for k, r in self.results.items()}
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "SearchState":
        d = dict(d)
        d["results"] = {k: Record.from_dict(r) for k, r in d.get("results", {}).items()}
        return cls(**d)


class FileLog:
    """The state as ``<folder>/<search_id>.search.json`` (written atomically)."""

    def __init__(self, folder: str, search_id: Optional[str] = None) -> None:
        self.folder = folder
        self.search_id = search_id or new_search_id()
        self.description = f"file {self.path}"

    @property
    def path(self) -> str:
        return os.path.join(self.folder, f"{self.search_id}.search.json")

    def load(self) -> Optional[Dict[str, Any]]:
        if not os.path.isfile(self.path):
            return None
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise EdgertError(f"{self.path}: not a readable search state ({exc})") from None

    def save(self, state: Dict[str, Any]) -> None:
        os.makedirs(self.folder, exist_ok=True)
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, self.path)


def check_resumable(saved: Dict[str, Any], config: Dict[str, Any], where: str) -> None:
    """A saved state resumes only the search it was: same model, target, device, space."""
    keys = ("model_sha256", "target", "device", "space", "statistic", "eval", "train")
    old = saved.get("config", {})
    diff = [k for k in keys if old.get(k) != config.get(k)]
    if diff:
        raise EdgertError(f"{where}: the saved search differs in {', '.join(diff)} "
                          f"({', '.join(f'{k}: {old.get(k)!r} -> {config.get(k)!r}' for k in diff)}); "
                          "start a new search instead of resuming")


def graph_fingerprint(onnx_path: str) -> str:
    """A digest of what a graph computes (ops, wiring, weights), not of its file's bytes:
    exporting the same model twice gives the same fingerprint, so a resumed search can
    tell it is looking at the model it started with."""
    import hashlib

    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(onnx_path)
    h = hashlib.sha256()
    for node in proto.graph.node:
        h.update(f"{node.op_type}|{','.join(node.input)}|{','.join(node.output)}\n".encode())
    for init in sorted(proto.graph.initializer, key=lambda t: t.name):
        h.update(init.name.encode())
        h.update(np.ascontiguousarray(numpy_helper.to_array(init)).tobytes())
    return h.hexdigest()
