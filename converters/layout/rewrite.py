"""Rewrites of shape-moving ops under a stored layout.

The hard case of layout propagation is Reshape (and its kin Flatten, Squeeze,
Unsqueeze): it reinterprets row-major bytes, so it can run on a permuted tensor
only when every group of dims it merges or splits is stored contiguously and in
order. ``reshape_groups`` finds those groups; ``reshape_out_perm`` says which
layout the result then has (or ``None`` when a TRANSPOSE is unavoidable);
``regroup`` picks the nearest layout the reshape *can* take; ``flatten_col_perm``
covers the classic exception, an NCHW flatten feeding a fully-connected layer,
where the FC's weight columns are permuted instead of the activations.

Dims of size 1 carry no bytes, so they are free to move: they are left out of
the groups and placed next to their logical neighbour.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from converters.layout.perm import Perm

Dim = Optional[int]          # None = dynamic (unknown until run time)
Group = Tuple[Tuple[int, ...], Tuple[int, ...]]   # (input dims, output dims)


def reshape_groups(in_shape: Sequence[Dim], out_shape: Sequence[Dim]) -> Optional[List[Group]]:
    """Pair up the non-1 dims of ``in_shape`` and ``out_shape`` into merge/split groups.

    A dynamic dim only pairs with a dynamic dim on its own. Returns ``None`` when the
    shapes cannot be matched (two dynamic dims merged, unknown products...).
    """
    ins = [i for i, d in enumerate(in_shape) if d != 1]
    outs = [o for o, d in enumerate(out_shape) if d != 1]
    groups: List[Group] = []
    i = o = 0
    while i < len(ins) or o < len(outs):
        if i >= len(ins) or o >= len(outs):
            return None
        a, b = in_shape[ins[i]], out_shape[outs[o]]
        if a is None or b is None:
            if a is None and b is None:
                groups.append(((ins[i],), (outs[o],)))
                i, o = i + 1, o + 1
                continue
            return None
        gi, go, pa, pb = [ins[i]], [outs[o]], a, b
        i, o = i + 1, o + 1
        while pa != pb:
            if pa < pb:
                if i >= len(ins) or in_shape[ins[i]] is None:
                    return None
                pa *= in_shape[ins[i]]
                gi.append(ins[i])
                i += 1
            else:
                if o >= len(outs) or out_shape[outs[o]] is None:
                    return None
                pb *= out_shape[outs[o]]
                go.append(outs[o])
                o += 1
        groups.append((tuple(gi), tuple(go)))
    return groups


def _place_ones(order: List[int], rank: int, shape: Sequence[Dim]) -> Perm:
    """Add the size-1 dims to a physical order of the non-1 dims, each right after its
    logical predecessor (dim 0 first)."""
    order = list(order)
    for d in range(rank):
        if shape[d] == 1 and d not in order:
            if d == 0:
                order.insert(0, d)
            else:
                order.insert(order.index(d - 1) + 1, d)
    return tuple(order)


def _map_through(perm: Sequence[int], src_shape: Sequence[Dim], dst_shape: Sequence[Dim],
                 groups: List[Tuple[Tuple[int, ...], Tuple[int, ...]]]) -> Optional[Perm]:
    seq = [p for p in perm if src_shape[p] != 1]
    pos = {d: k for k, d in enumerate(seq)}
    placed = []
    for src, dst in groups:
        first = pos[src[0]]
        if [pos[d] for d in src] != list(range(first, first + len(src))):
            return None                      # group split apart or out of order in storage
        placed.append((first, dst))
    order = [d for _, dst in sorted(placed) for d in dst]
    return _place_ones(order, len(dst_shape), dst_shape)


def reshape_out_perm(in_perm: Sequence[int], in_shape: Sequence[Dim],
                     out_shape: Sequence[Dim]) -> Optional[Perm]:
    """Layout of the reshape's result when it runs on the stored bytes as they are,
    or ``None`` if the stored order breaks a merged/split group."""
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return None
    return _map_through(in_perm, in_shape, out_shape, groups)


def reshape_in_perm(out_perm: Sequence[int], in_shape: Sequence[Dim],
                    out_shape: Sequence[Dim]) -> Optional[Perm]:
    """The input layout for which the reshape yields ``out_perm`` for free (or ``None``)."""
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return None
    return _map_through(out_perm, out_shape, in_shape, [(o, i) for i, o in groups])


def regroup(in_perm: Sequence[int], in_shape: Sequence[Dim], out_shape: Sequence[Dim]) -> Perm:
    """The layout nearest ``in_perm`` on which the reshape is free: each merged group is
    gathered, in logical order, where its first member is stored."""
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return tuple(range(len(in_shape)))
    seq = [p for p in in_perm if in_shape[p] != 1]
    owner = {d: k for k, (src, _) in enumerate(groups) for d in src}
    order, done = [], set()
    for d in seq:
        k = owner[d]
        if k not in done:
            done.add(k)
            order.extend(groups[k][0])
    return _place_ones(order, len(in_shape), in_shape)


def flatten_col_perm(in_perm: Sequence[int], in_shape: Sequence[Dim]) -> Optional[np.ndarray]:
    """For ``[N, ...] -> [N, K]`` on a tensor stored as ``in_perm`` with dim 0 first:
    ``col[j]`` is the logical feature index found at stored column ``j``.

    ``None`` if dim 0 is not stored first or a feature dim is dynamic.
    """
    if in_perm[0] != 0 or any(d is None for d in in_shape[1:]):
        return None
    dims = [int(d) for d in in_shape[1:]]
    order = [p - 1 for p in in_perm[1:]]
    return np.arange(int(np.prod(dims)), dtype=np.int64).reshape(dims).transpose(order).ravel()


def pads_to_pairs(pads: Sequence[int], perm: Sequence[int]) -> List[List[int]]:
    """ONNX pads ``[b0, b1, ..., e0, e1, ...]`` as stored-order ``[[b, e], ...]`` pairs."""
    rank = len(pads) // 2
    return [[int(pads[p]), int(pads[p + rank])] for p in perm]
