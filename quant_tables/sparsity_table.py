"""The sparsity table: per weight, what sparsity it has or must reach, and in what pattern.

Keyed by ONNX initializer name, like the quantization table. An entry says the
fraction of zero elements (``measured`` from a pruned model, or a ``target`` for
edgert's pruner), the pattern the zeros follow, and where the mask came from:

* ``unstructured`` — any element may be zero;
* ``block`` — zeros come in whole blocks of ``block`` = [b0, b1] elements over
  ``axes`` (default [0, 1]: output channels, input channels); ``[4, 1]`` is MNN's
  SIMD_OC "1x4 along output channels", ``[1, 4]`` TFLite's 1x4 FC blocks;
* ``n:m`` — in every run of ``m`` consecutive elements along ``axis`` (default 1,
  the input channels) at most ``n`` are non-zero (2:4);
* ``channel`` — whole slices along ``axis`` (default 0) are zero; ``pruned`` may
  list them.

The format is in ``SCHEMA.md``; ``pattern_sparsity`` and ``check_weights`` measure
and verify real arrays so producers and consumers agree on what a pattern means.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from quant_tables.errors import TableError
from quant_tables.provenance import Provenance
from quant_tables.table import PathLike, _extras, _write_atomic, read_json

FORMAT = "edgert.sparsity-table"
VERSION = 1
PATTERNS = ("unstructured", "block", "n:m", "channel")


@dataclass
class WeightSparsity:
    pattern: str = "unstructured"
    mask_source: str = "zeros"
    measured: Optional[float] = None
    target: Optional[float] = None
    block: Optional[Tuple[int, int]] = None
    axes: Tuple[int, int] = (0, 1)
    n: Optional[int] = None
    m: Optional[int] = None
    axis: Optional[int] = None
    pruned: Optional[List[int]] = None
    mask_file: Optional[str] = None
    source: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        """The measured sparsity when known, else the target."""
        value = self.measured if self.measured is not None else self.target
        if value is None:
            raise TableError("a sparsity entry has neither a measured nor a target sparsity")
        return float(value)

    @property
    def block_shape(self) -> Tuple[int, int]:
        """``block`` of a block entry (the loader refuses a block entry without one)."""
        if self.block is None:
            raise TableError("a block sparsity entry has no block shape")
        b0, b1 = self.block
        return int(b0), int(b1)

    @property
    def n_of_m(self) -> Tuple[int, int]:
        """(n, m) of an n:m entry (the loader refuses one without them)."""
        if self.n is None or self.m is None:
            raise TableError("an n:m sparsity entry needs n and m")
        return self.n, self.m

    @property
    def pattern_axis(self) -> int:
        if self.axis is not None:
            return self.axis
        return 1 if self.pattern == "n:m" else 0

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"pattern": self.pattern, "mask_source": self.mask_source}
        for k in ("measured", "target"):
            if getattr(self, k) is not None:
                d[k] = float(getattr(self, k))
        if self.block is not None:
            d["block"] = [int(b) for b in self.block]
            if tuple(self.axes) != (0, 1):
                d["axes"] = [int(a) for a in self.axes]
        for k in ("n", "m", "axis"):
            if getattr(self, k) is not None:
                d[k] = int(getattr(self, k))
        if self.pruned is not None:
            d["pruned"] = [int(c) for c in self.pruned]
        for k in ("mask_file", "source"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "WeightSparsity":
        return cls(pattern=d["pattern"], mask_source=d["mask_source"], measured=d.get("measured"),
                   target=d.get("target"),
                   block=tuple(d["block"]) if d.get("block") is not None else None,
                   axes=tuple(d.get("axes", (0, 1))), n=d.get("n"), m=d.get("m"),
                   axis=d.get("axis"), pruned=d.get("pruned"), mask_file=d.get("mask_file"),
                   source=d.get("source"), extra=_extras(d))


@dataclass
class SparsityTable:
    weights: Dict[str, WeightSparsity] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        d = {"format": FORMAT, "version": VERSION, "provenance": self.provenance.to_dict(),
             "weights": {k: v.to_dict() for k, v in sorted(self.weights.items())}}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: str = "sparsity table") -> "SparsityTable":
        validate_sparsity_dict(d, where)
        return cls({k: WeightSparsity.from_dict(v) for k, v in d["weights"].items()},
                   Provenance.from_dict(d.get("provenance", {})), _extras(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save(self, path: PathLike) -> None:
        d = self.to_dict()
        validate_sparsity_dict(d, os.fspath(path))
        _write_atomic(os.fspath(path), json.dumps(d, indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: PathLike) -> "SparsityTable":
        path = os.fspath(path)
        return cls.from_dict(read_json(path), where=path)


def validate_sparsity_dict(d: Dict[str, Any], where: str = "sparsity table") -> None:
    from quant_tables.validate import check_header, raise_if, schema_problems

    if not isinstance(d, dict):
        raise TableError(f"{where}: a table is a JSON object, got {type(d).__name__}")
    check_header(d, FORMAT, VERSION, where)
    problems = schema_problems(d, "sparsity_table")
    for name, e in (d.get("weights") or {}).items():
        if not isinstance(e, dict):
            continue
        what = f"weight {name!r}"
        for k in ("measured", "target"):
            v = e.get(k)
            if isinstance(v, float) and v != v:
                problems.append(f"{what}: {k} sparsity is NaN")
        n, m = e.get("n"), e.get("m")
        if isinstance(n, int) and isinstance(m, int) and n >= m:
            problems.append(f"{what}: n:m needs n < m, got {n}:{m}")
        if e.get("pattern") != "block" and "block" in e:
            problems.append(f"{what}: 'block' given for pattern {e.get('pattern')!r}")
        axes = e.get("axes")
        if isinstance(axes, list) and len(set(axes)) != len(axes):
            problems.append(f"{what}: axes {axes} repeat an axis")
    raise_if(problems, where)


# ---- measuring real arrays -------------------------------------------------------

def _blocks(w: np.ndarray, block: Tuple[int, int], axes: Tuple[int, int]) -> np.ndarray:
    """Boolean "block has a non-zero" over a grid of blocks (edge blocks padded with zeros)."""
    a0, a1 = (a % w.ndim for a in axes)
    rest = [i for i in range(w.ndim) if i not in (a0, a1)]
    x = np.transpose(w != 0, [a0, a1] + rest).reshape(w.shape[a0], w.shape[a1], -1)
    b0, b1 = block
    p0, p1 = (-x.shape[0]) % b0, (-x.shape[1]) % b1
    x = np.pad(x, ((0, p0), (0, p1), (0, 0)))
    x = x.reshape(x.shape[0] // b0, b0, x.shape[1] // b1, b1, x.shape[2])
    return np.asarray(x.any(axis=(1, 3)))


def pattern_sparsity(w: np.ndarray, entry: WeightSparsity) -> float:
    """The sparsity of ``w`` counted the pattern's way (zeros in whole blocks/channels)."""
    w = np.asarray(w)
    if entry.pattern == "unstructured" or w.size == 0:
        return float(np.mean(w == 0)) if w.size else 0.0
    if entry.pattern == "block":
        return float(1.0 - _blocks(w, entry.block_shape, (entry.axes[0], entry.axes[1])).mean())
    if entry.pattern == "channel":
        ax = entry.pattern_axis % w.ndim
        red = tuple(i for i in range(w.ndim) if i != ax)
        return float(np.mean(~np.any(w != 0, axis=red)))
    return float(np.mean(w == 0))  # n:m: plain zero fraction; conformity is checked apart


def nm_violations(w: np.ndarray, n: int, m: int, axis: int) -> int:
    """How many runs of ``m`` elements along ``axis`` hold more than ``n`` non-zeros."""
    x = np.moveaxis(np.asarray(w) != 0, axis % w.ndim, -1)
    if x.shape[-1] % m:
        return -1
    groups = x.reshape(*x.shape[:-1], x.shape[-1] // m, m).sum(axis=-1)
    return int(np.sum(groups > n))


def check_weights(table: SparsityTable, weights: Mapping[str, np.ndarray], tol: float = 0.01,
                  where: str = "sparsity table") -> Dict[str, float]:
    """Check entries against real weights: shapes fit the pattern, measured values hold.

    Returns the pattern sparsity of each weight found; raises TableError listing
    every entry that does not hold. Names missing from ``weights`` are skipped
    (check names against the graph with ``check_graph_names``).
    """
    from quant_tables.validate import raise_if

    problems: List[str] = []
    found: Dict[str, float] = {}
    for name, e in table.weights.items():
        if name not in weights:
            continue
        w = np.asarray(weights[name])
        what = f"weight {name!r} (shape {list(w.shape)})"
        shape_problem = _shape_problem(w.shape, e)
        if shape_problem:
            problems.append(f"{what}: {shape_problem}")
            continue
        s = pattern_sparsity(w, e)
        found[name] = s
        if e.measured is not None and abs(s - e.measured) > tol:
            problems.append(f"{what}: table says {e.pattern} sparsity {e.measured:.4f}, "
                            f"the weight has {s:.4f}")
        if e.pattern == "n:m" and e.measured is not None:
            bad = nm_violations(w, *e.n_of_m, e.pattern_axis)
            if bad:
                problems.append(f"{what}: {bad} groups of {e.m} hold more than {e.n} non-zeros")
        if e.pattern == "channel" and e.pruned:
            ax = e.pattern_axis % w.ndim
            live = [c for c in e.pruned if np.any(np.take(w, c, axis=ax) != 0)]
            if live:
                problems.append(f"{what}: channels listed as pruned are not zero: {live[:10]}")
    raise_if(problems, where)
    return found


def _shape_problem(shape: Tuple[int, ...], e: WeightSparsity) -> Optional[str]:
    rank = len(shape)
    axes = list(e.axes) if e.pattern == "block" else [e.pattern_axis]
    if e.pattern == "unstructured":
        return None
    bad = [a for a in axes if not -rank <= a < rank]
    if bad:
        return f"axis {bad[0]} is out of range for rank {rank}"
    if e.pattern == "n:m" and shape[e.pattern_axis] % e.n_of_m[1]:
        return (f"axis {e.pattern_axis} has {shape[e.pattern_axis]} elements, not a multiple "
                f"of m={e.m}")
    if e.pattern == "channel" and e.pruned:
        dim = shape[e.pattern_axis]
        out = [c for c in e.pruned if c >= dim]
        if out:
            return f"pruned channels {out[:5]} are out of range ({dim} channels on axis {e.pattern_axis})"
    return None


def check_graph_names(table: SparsityTable, model: Any, where: str = "sparsity table") -> List[str]:
    """Names the graph lacks (returned for a warning); shape mismatches raise TableError."""
    from quant_tables.validate import graph_facts, raise_if

    facts = graph_facts(model)
    unknown, problems = [], []
    for name, e in table.weights.items():
        if name not in facts.constants:
            unknown.append(name)
            continue
        p = _shape_problem(facts.constants[name], e)
        if p:
            problems.append(f"weight {name!r} (shape {list(facts.constants[name])}): {p}")
    if problems and len(unknown) > len(table.weights) / 2:
        # mostly unknown names: generic ones (val_12) met by chance in another model
        source = getattr(getattr(table, "provenance", None), "source", "") or ""
        problems.insert(0, f"only {len(table.weights) - len(unknown)} of the table's "
                           f"{len(table.weights)} weight names are in this graph: it looks "
                           f"made for another model"
                           + (f" (it was made from {source!r})" if source else ""))
    raise_if(problems, where)
    return sorted(unknown)
