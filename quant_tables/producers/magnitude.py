"""Magnitude pruning of weight arrays to a pattern and a sparsity target (numpy only).

One implementation serves every front-end (torch modules, ONNX initializers), so a
pattern means the same thing whoever prunes: the weight is cut into *units* —
single elements (``unstructured``), blocks of ``b_out x b_in`` elements over the
output/input-channel axes at each kernel position (``block``: 4x1 is MNN's
SIMD_OC "1x4 along output channels", 1x4 and 1x16 TFLite's fully-connected
blocks along the input), or whole output channels (``channel``) — each unit is
scored by its mean absolute value, and the lowest-scored units are zeroed until
the target is met. ``n:m`` keeps the ``n`` largest of every ``m`` consecutive
input-channel elements (its sparsity is fixed at 1 - n/m).

Targets are per layer, or one *global* target: all layers' units are ranked
together and cut at the score that zeroes the requested fraction of all
elements, so redundant layers lose more than sensitive ones. The sparsity
actually reached is reported per layer (blocks at an edge, rounding, n:m and
global ranking all make it differ from the request).

Hand-written because the arithmetic must match ``sparsity_table.pattern_sparsity``
exactly (torch.nn.utils.prune has no block or n:m pattern, and its masks are
torch tensors; it is used to *attach* these masks to torch modules).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgert.errors import InputError
from quant_tables.sparsity_table import WeightSparsity, nm_violations, pattern_sparsity

# pattern names accepted by ``PatternSpec.parse`` (the CLI's --pattern)
PATTERN_NAMES = ("unstructured", "1x4", "oc4", "ic4", "ic16", "OxI", "2:4", "N:M", "channel")
LAYER_KINDS = ("conv1x1", "conv", "depthwise", "fc")


@dataclass(frozen=True)
class PatternSpec:
    """A sparsity pattern independent of any layer's axis order."""

    pattern: str = "unstructured"            # unstructured | block | n:m | channel
    block: Tuple[int, int] = (1, 1)           # (along output channels, along input channels)
    n: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str) -> "PatternSpec":
        """``unstructured``; ``1x4``/``oc4`` (4 output channels x 1 input: MNN SIMD_OC);
        ``ic4``/``ic16`` (1 output x 4/16 inputs: TFLite FC blocks); ``OxI`` for any block
        (e.g. ``8x1``); ``N:M`` (e.g. ``2:4``); ``channel``."""
        t = text.strip().lower()
        if t in ("unstructured", "random", "element"):
            return cls("unstructured")
        if t in ("channel", "filter"):
            return cls("channel")
        if t in ("1x4", "oc4"):
            return cls("block", (4, 1))
        named = re.fullmatch(r"(oc|ic)(\d+)", t)
        if named:
            k = int(named.group(2))
            return cls("block", (k, 1) if named.group(1) == "oc" else (1, k))
        nm = re.fullmatch(r"(\d+):(\d+)", t)
        if nm:
            n, m = int(nm.group(1)), int(nm.group(2))
            if not 0 < n < m:
                raise InputError(f"pattern {text!r}: n:m needs 0 < n < m")
            return cls("n:m", n=n, m=m)
        blk = re.fullmatch(r"(\d+)x(\d+)", t)
        if blk and int(blk.group(1)) > 0 and int(blk.group(2)) > 0:
            return cls("block", (int(blk.group(1)), int(blk.group(2))))
        raise InputError(f"unknown sparsity pattern {text!r}; patterns: unstructured, 1x4 (4 "
                         "output channels, MNN), ic4 / ic16 (4 / 16 input channels, TFLite FC), "
                         "OxI (any block), N:M (e.g. 2:4), channel")

    @property
    def label(self) -> str:
        if self.pattern == "block":
            return f"block {self.block[0]}x{self.block[1]} (out x in)"
        if self.pattern == "n:m":
            return f"{self.n}:{self.m}"
        return self.pattern

    def entry(self, out_axis: int, in_axis: int, **fields: Any) -> WeightSparsity:
        """A table entry for a weight whose channels sit on ``out_axis`` / ``in_axis``."""
        if self.pattern == "block":
            return WeightSparsity("block", block=self.block, axes=(out_axis, in_axis), **fields)
        if self.pattern == "n:m":
            return WeightSparsity("n:m", n=self.n, m=self.m, axis=in_axis, **fields)
        if self.pattern == "channel":
            return WeightSparsity("channel", axis=out_axis, **fields)
        return WeightSparsity("unstructured", **fields)


@dataclass
class LayerWeightArray:
    """One weight to prune: its array and where its channels are."""

    name: str
    array: np.ndarray
    out_axis: int
    in_axis: int
    kind: str = "conv"                        # one of LAYER_KINDS
    module: str = ""                          # torch module or ONNX node, for reports


@dataclass
class LayerResult:
    name: str
    kind: str
    shape: Tuple[int, ...]
    pattern: str
    target: Optional[float]
    reached: float                            # counted the pattern's way
    zeros: float                              # plain fraction of zero elements
    params: int

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                "pattern": self.pattern, "target": self.target,
                "reached": round(self.reached, 6), "zeros": round(self.zeros, 6),
                "params": self.params}


@dataclass
class PruneResult:
    """Masks (True = keep) per weight name, the table entries, and what was reached."""

    masks: Dict[str, np.ndarray] = field(default_factory=dict)
    entries: Dict[str, WeightSparsity] = field(default_factory=dict)
    layers: List[LayerResult] = field(default_factory=list)
    scope: str = "layer"
    skipped: List[Tuple[str, str]] = field(default_factory=list)   # (weight, why left dense)

    @property
    def overall_zeros(self) -> float:
        total = sum(r.params for r in self.layers)
        return sum(r.zeros * r.params for r in self.layers) / total if total else 0.0

    def rows(self) -> List[List[str]]:
        return [[r.name, r.kind, "x".join(map(str, r.shape)), r.pattern,
                 "-" if r.target is None else f"{r.target:.0%}", f"{r.reached:.1%}",
                 f"{r.zeros:.1%}"] for r in self.layers]

    def to_dict(self) -> Dict[str, Any]:
        return {"scope": self.scope, "overall_zeros": round(self.overall_zeros, 6),
                "layers": [r.to_dict() for r in self.layers],
                "skipped": [{"weight": n, "reason": why} for n, why in self.skipped]}


# -- units: how a pattern cuts a weight ----------------------------------------------

def _to_oir(w: np.ndarray, out_axis: int, in_axis: int) -> Tuple[np.ndarray, List[int]]:
    """``w`` as [out, in, rest] (and the permutation that got it there)."""
    o, i = out_axis % w.ndim, in_axis % w.ndim
    perm = [o, i] + [k for k in range(w.ndim) if k not in (o, i)]
    x = np.transpose(w, perm)
    return x.reshape(x.shape[0], x.shape[1], -1), perm


def _from_oir(x: np.ndarray, shape: Sequence[int], perm: List[int]) -> np.ndarray:
    permuted_shape = [shape[k] for k in perm]
    return np.transpose(x.reshape(permuted_shape), np.argsort(perm))


def _block_units(w: np.ndarray, spec: PatternSpec, out_axis: int, in_axis: int):
    """(scores [nb_o, nb_i, R], element counts, expand(keep_units) -> keep mask)."""
    x, perm = _to_oir(np.abs(w.astype(np.float64)), out_axis, in_axis)
    bo, bi = spec.block
    O, I, R = x.shape
    po, pi = (-O) % bo, (-I) % bi
    xp = np.pad(x, ((0, po), (0, pi), (0, 0)))
    blocks = xp.reshape((O + po) // bo, bo, (I + pi) // bi, bi, R)
    ones = np.pad(np.ones((O, I, R)), ((0, po), (0, pi), (0, 0)))
    counts = ones.reshape(blocks.shape).sum(axis=(1, 3))
    scores = blocks.sum(axis=(1, 3)) / counts

    def expand(keep: np.ndarray) -> np.ndarray:
        full = np.repeat(np.repeat(keep, bo, axis=0), bi, axis=1)[:O, :I, :]
        return _from_oir(full, w.shape, perm)

    return scores, counts, expand


def _units(w: np.ndarray, spec: PatternSpec, out_axis: int, in_axis: int):
    if spec.pattern == "unstructured":
        return np.abs(w.astype(np.float64)), np.ones(w.shape), lambda keep: keep
    if spec.pattern == "block":
        return _block_units(w, spec, out_axis, in_axis)
    if spec.pattern == "channel":
        o = out_axis % w.ndim
        red = tuple(k for k in range(w.ndim) if k != o)
        scores = np.abs(w.astype(np.float64)).mean(axis=red)
        per = w.size // w.shape[o]
        shape = [1] * w.ndim
        shape[o] = w.shape[o]
        return scores, np.full(scores.shape, per), \
            lambda keep: np.broadcast_to(keep.reshape(shape), w.shape).copy()
    raise ValueError(f"no units for pattern {spec.pattern}")


def nm_mask(w: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Keep the ``n`` largest |w| of every ``m`` consecutive elements along ``axis``."""
    ax = axis % w.ndim
    if w.shape[ax] % m:
        raise InputError(f"n:m needs axis {ax} ({w.shape[ax]} elements) to be a multiple of m={m}")
    x = np.moveaxis(np.abs(w), ax, -1)
    g = x.reshape(*x.shape[:-1], x.shape[-1] // m, m)
    order = np.argsort(-g, axis=-1, kind="stable")
    keep = np.zeros(g.shape, bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    return np.moveaxis(keep.reshape(x.shape), -1, ax)


def _lowest(scores: np.ndarray, k: int) -> np.ndarray:
    """Keep-mask over ``scores`` zeroing the ``k`` lowest (stable order)."""
    keep = np.ones(scores.size, bool)
    if k > 0:
        keep[np.argsort(scores.ravel(), kind="stable")[:k]] = False
    return keep.reshape(scores.shape)


def layer_mask(w: np.ndarray, spec: PatternSpec, sparsity: Optional[float], out_axis: int,
               in_axis: int) -> np.ndarray:
    """Keep-mask of one weight pruned to ``sparsity`` (ignored for n:m)."""
    if spec.pattern == "n:m":
        return nm_mask(w, spec.n, spec.m, in_axis)
    scores, _, expand = _units(w, spec, out_axis, in_axis)
    k = int(round(float(sparsity or 0.0) * scores.size))
    if spec.pattern == "channel":
        k = min(k, scores.size - 1)          # a layer keeps at least one channel
    return expand(_lowest(scores, k))


def _global_masks(layers: Sequence[LayerWeightArray], spec: PatternSpec,
                  sparsity: float) -> Dict[str, np.ndarray]:
    units = [_units(l.array, spec, l.out_axis, l.in_axis) for l in layers]
    scores = np.concatenate([u[0].ravel() for u in units])
    counts = np.concatenate([u[1].ravel() for u in units])
    owner = np.concatenate([np.full(u[0].size, i) for i, u in enumerate(units)])
    order = np.argsort(scores, kind="stable")
    budget = sparsity * counts.sum()
    cut = int(np.searchsorted(np.cumsum(counts[order]), budget, side="right"))
    drop = np.zeros(scores.size, bool)
    drop[order[:cut]] = True
    if spec.pattern == "channel":                 # every layer keeps its best channel
        for i in range(len(units)):
            idx = np.flatnonzero(owner == i)
            if drop[idx].all():
                drop[idx[np.argmax(scores[idx])]] = False
    masks, start = {}, 0
    for layer, (s, _, expand) in zip(layers, units):
        keep = ~drop[start:start + s.size].reshape(s.shape)
        masks[layer.name] = expand(keep)
        start += s.size
    return masks


def _target_for(name: str, targets: Union[float, Mapping[str, float]]) -> Optional[float]:
    if not isinstance(targets, Mapping):
        return float(targets)
    if name in targets:
        return float(targets[name])
    for pattern, value in targets.items():
        if re.fullmatch(pattern, name) or re.search(pattern, name):
            return float(value)
    return None


def prune_layers(layers: Sequence[LayerWeightArray], spec: PatternSpec,
                 targets: Union[float, Mapping[str, float]] = 0.5, scope: str = "layer",
                 mask_source: str = "magnitude") -> PruneResult:
    """Masks and table entries for ``layers`` pruned to ``targets``.

    Args:
        targets: one sparsity for every layer, or {name or regex: sparsity} (layers
            matching none are left alone); with ``scope="global"`` a single number.
        scope: "layer" (each layer reaches its target) or "global" (one ranking over
            all layers; the target is the fraction of all their elements).
    """
    if scope not in ("layer", "global"):
        raise InputError(f"scope {scope!r}: choose 'layer' or 'global'")
    _check_targets(targets, scope)
    result = PruneResult(scope=scope)
    chosen = [l for l in layers if _target_for(l.name, targets) is not None]
    if spec.pattern == "n:m":
        # a weight whose input axis is not whole groups of m (an RGB stem's 3 channels)
        # cannot hold the pattern: it stays dense, as NVIDIA's ASP leaves it
        for l in chosen:
            length = l.array.shape[l.in_axis % l.array.ndim]
            if length % spec.m:
                result.skipped.append((l.name, f"{length} input elements, not a multiple "
                                               f"of m={spec.m}"))
        chosen = [l for l in chosen if l.name not in dict(result.skipped)]
        if not chosen and result.skipped:
            raise InputError(f"{spec.label}: no selected weight has an input axis that is a "
                             f"multiple of m={spec.m}: " + "; ".join(
                                 f"{n} ({why})" for n, why in result.skipped))
    if scope == "global" and spec.pattern != "n:m":
        masks = _global_masks(chosen, spec, float(targets))   # type: ignore[arg-type]
    else:
        masks = {l.name: layer_mask(l.array, spec, _target_for(l.name, targets), l.out_axis,
                                    l.in_axis) for l in chosen}
    for l in chosen:
        keep = masks[l.name] & (l.array != 0)
        pruned = np.where(keep, l.array, 0)
        target = None if spec.pattern == "n:m" else _target_for(l.name, targets)
        entry = spec.entry(l.out_axis, l.in_axis, mask_source=mask_source, target=target,
                           source=l.module or None)
        if spec.pattern == "channel":
            red = tuple(k for k in range(pruned.ndim) if k != l.out_axis % pruned.ndim)
            entry.pruned = [int(c) for c in np.flatnonzero(~np.any(pruned != 0, axis=red))]
        entry.measured = pattern_sparsity(pruned, entry)
        if spec.pattern == "n:m" and nm_violations(pruned, spec.n, spec.m, l.in_axis):
            raise AssertionError(f"{l.name}: n:m mask violates {spec.n}:{spec.m}")
        result.masks[l.name] = keep
        result.entries[l.name] = entry
        result.layers.append(LayerResult(l.name, l.kind, tuple(l.array.shape), spec.label,
                                         target, entry.measured, float(np.mean(pruned == 0)),
                                         int(l.array.size)))
    return result


def _check_targets(targets, scope: str) -> None:
    values = list(targets.values()) if isinstance(targets, Mapping) else [targets]
    if scope == "global" and isinstance(targets, Mapping):
        raise InputError("a global target is one number (the fraction of all selected weights)")
    for v in values:
        if not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0:
            raise InputError(f"sparsity target {v!r}: give a fraction in [0, 1)")


def select(layers: Sequence[LayerWeightArray], kinds: Sequence[str] = ("conv1x1", "conv", "fc"),
           include: Optional[str] = None, exclude: Optional[str] = None,
           min_params: int = 0) -> List[LayerWeightArray]:
    """The layers a pruning run touches: by kind, name regex and size."""
    bad = [k for k in kinds if k not in LAYER_KINDS]
    if bad:
        raise InputError(f"unknown layer kind(s) {bad}; kinds: {', '.join(LAYER_KINDS)}")
    out = []
    for l in layers:
        if l.kind not in kinds or l.array.size < min_params:
            continue
        if include and not re.search(include, l.name):
            continue
        if exclude and re.search(exclude, l.name):
            continue
        out.append(l)
    return out


def layer_kind(op: str, shape: Sequence[int], group: int = 1) -> str:
    """conv1x1 / conv / depthwise / fc for a weight of ``shape`` used by ``op``."""
    if op in ("Gemm", "MatMul", "Linear"):
        return "fc"
    if group > 1 and len(shape) >= 2 and shape[1] == 1:
        return "depthwise"
    if len(shape) >= 3 and all(int(d) == 1 for d in shape[2:]):
        return "conv1x1"
    return "conv"
