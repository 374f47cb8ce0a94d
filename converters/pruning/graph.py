"""Channel dependencies of an ONNX graph: which channels must be removed together.

Every channel of every tensor gets an id. A layer that makes new channels (Conv,
ConvTranspose, Gemm, MatMul with a constant weight) makes new ids; each tensor also
knows which axis holds its channels (1 for NCHW; the last one after a MatMul on
[batch, tokens, features] or a Transpose to NHWC, as in transformer and ConvNeXt
MLPs); ops that
keep channels (BatchNorm, activations, pooling, resize, depthwise convs) pass
their input's ids on; an elementwise op between two tensors (a residual Add, an
SE Mul) *unites* the ids position by position (union-find); a channel Concat
lays its inputs' ids end to end; a Flatten repeats each id over the spatial
positions. A *class* (a union-find root) is one channel as far as pruning is
concerned: removing it removes that position from every tensor that carries it,
the producing rows, the BatchNorm entries, depthwise filters, per-channel
constants, and the consuming columns of the next layers. A grouped convolution
(1 < group < channels) adds a *split*: its input and its output positions fall
into ``group`` equal blocks, and pruning must leave every block as wide as the
others (the plan removes as many channels from each).

Each op rule (``rules.py``) records *slices*: an initializer, an axis, and the
tensor whose channel positions index that axis. Rewriting (``rewrite.py``)
takes the kept positions; masking (``mask.py``) zeroes the removed ones.

A class cannot be removed when it reaches something the analysis does not
understand or must keep (a graph input or output, a Reshape that moves
channels...): it is *frozen*, with the reason. Removal is
exact — the pruned model computes what the source computes with those channels
masked — only where every consumer (a layer summing over channels) sees zeros
once the class's parameters are zeroed; ``zero`` tracks that per position, and a
class whose zeros are lost on the way (through Sigmoid(0) = 0.5, a non-zero pad
value...) is *blocked* with the op that loses them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np


@dataclass
class Slice:
    """An initializer axis indexed by the channel positions of ``space``."""

    value: Any                       # the initializer's ir.Value
    axis: int
    space: Any                       # the ir.Value whose channel positions index ``axis``
    mask: bool                       # zero it in the masked source (a parameter of the class)
    node: str = ""
    role: str = ""                   # "weight out", "weight in", "bias", "bn scale", ...
    groups: int = 1                  # a grouped Conv's "weight in": sliced group by group


@dataclass
class Producer:
    """A layer that makes new channels: its weight and which axis holds them."""

    weight: Any                      # ir.Value of the weight
    out_axis: int
    output: Any                      # the value carrying its channels
    node: str
    op_type: str


class ChannelGraph:
    """Channel ids of every tracked tensor, their union-find, and what to slice."""

    def __init__(self) -> None:
        self.parent: List[int] = []
        self.ids: Dict[Any, np.ndarray] = {}        # value -> id per channel position
        self.zero: Dict[Any, np.ndarray] = {}       # value -> "zero once masked" per position
        self.axis: Dict[Any, int] = {}              # value -> its channel axis (1: NCHW)
        self.slices: List[Slice] = []
        self.producers: List[Producer] = []
        self.fixups: List[Callable[[Callable[[Any], np.ndarray]], None]] = []
        self.frozen: Dict[int, str] = {}            # id -> reason (resolved to roots later)
        self.blocked: Dict[int, str] = {}
        self.bn_scale: Dict[int, float] = {}        # id -> |gamma| / sqrt(var + eps)
        self.notes: List[str] = []
        # (value, groups, why): its channel positions split into ``groups`` equal blocks,
        # and every block must keep as many as the others (a grouped Conv's input/output)
        self.splits: List[Tuple[Any, int, str]] = []

    # -- ids and classes ------------------------------------------------------------
    def new_ids(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self.find(int(i)) for i in ids], dtype=np.int64)

    def set(self, value, ids: np.ndarray, zero: np.ndarray, axis: int = 1) -> None:
        self.ids[value] = np.asarray(ids, dtype=np.int64)
        self.zero[value] = np.asarray(zero, dtype=bool)
        self.axis[value] = int(axis)

    def axis_of(self, value) -> int:
        """The axis holding ``value``'s channels: 1 for NCHW tensors, the last one after
        a Linear layer on [batch, tokens, features] or a Transpose to NHWC."""
        return self.axis.get(value, 1)

    def tracked(self, value) -> bool:
        return value is not None and value in self.ids

    def freeze(self, value, reason: str) -> None:
        if self.tracked(value):
            for i in self.ids[value].tolist():
                self.frozen.setdefault(i, reason)

    def block_nonzero(self, value, consumer: str) -> None:
        """Classes whose zeros do not reach ``consumer`` cannot be removed exactly."""
        if not self.tracked(value):
            return
        for i, z in zip(self.ids[value].tolist(), self.zero[value].tolist()):
            if not z:
                self.blocked.setdefault(i, f"its values reach {consumer} non-zero after "
                                           "masking (an op on the way maps 0 to non-zero)")

    # -- results --------------------------------------------------------------------
    def class_reasons(self) -> Dict[int, str]:
        """root -> why it cannot be removed (frozen first, then blocked)."""
        out: Dict[int, str] = {}
        for table in (self.frozen, self.blocked):
            for i, reason in table.items():
                out.setdefault(self.find(i), reason)
        return out

    def keep_positions(self, value, removed: set) -> np.ndarray:
        roots = self.roots(self.ids[value])
        return np.array([k for k, r in enumerate(roots.tolist()) if r not in removed],
                        dtype=np.int64)

    def producer_roots(self, p: Producer) -> np.ndarray:
        return self.roots(self.ids[p.output])


@dataclass
class ClassInfo:
    """One removable-or-not channel class, for planning and reports."""

    root: int
    members: List[Tuple[str, int]] = field(default_factory=list)   # (producer weight, row)
    score: float = 0.0
    reason: Optional[str] = None
