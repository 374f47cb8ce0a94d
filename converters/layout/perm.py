"""Permutation algebra for layouts.

A value keeps its *logical* (ONNX) shape; the target stores it *physically* as
``transpose(logical, perm)``: physical dim ``j`` is logical dim ``perm[j]``.
NCHW stored as NHWC is ``perm = (0, 2, 3, 1)``. Every layout decision is made
in these terms, so one small set of functions serves every op.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import numpy as np

Perm = Tuple[int, ...]


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def channel_last(rank: int) -> Perm:
    """NC[D]HW -> N[D]HWC: ``(0, 2, ..., rank-1, 1)``; ranks below 3 have no channel axis."""
    if rank < 3:
        return identity(rank)
    return (0,) + tuple(range(2, rank)) + (1,)


def is_identity(perm: Sequence[int]) -> bool:
    return tuple(perm) == identity(len(perm))


def inverse(perm: Sequence[int]) -> Perm:
    inv = [0] * len(perm)
    for j, p in enumerate(perm):
        inv[p] = j
    return tuple(inv)


def physical_shape(shape: Sequence, perm: Sequence[int]) -> List:
    """The stored shape of a value with logical ``shape``."""
    return [shape[p] for p in perm]


def physical_axis(perm: Sequence[int], axis: int) -> int:
    """Where logical ``axis`` (negative allowed) sits in the stored tensor."""
    return list(perm).index(axis % len(perm))


def transpose_between(src: Sequence[int], dst: Sequence[int]) -> Perm:
    """The TRANSPOSE permutation turning a tensor stored as ``src`` into one stored as ``dst``."""
    src = list(src)
    return tuple(src.index(d) for d in dst)


def after_transpose(in_perm: Sequence[int], t: Sequence[int]) -> Perm:
    """Perm of ``Transpose(x, t)``'s result if the data is not moved (the op becomes free).

    Logical out dim ``i`` is logical in dim ``t[i]``; keeping the bytes where they are,
    physical dim ``j`` (logical in dim ``in_perm[j]``) is logical out dim ``t^-1[in_perm[j]]``.
    """
    t_inv = inverse(t)
    return tuple(t_inv[p] for p in in_perm)


def before_transpose(out_perm: Sequence[int], t: Sequence[int]) -> Perm:
    """The input perm that makes ``Transpose(x, t)`` free with result perm ``out_perm``."""
    return tuple(t[p] for p in out_perm)


def drop_axes(perm: Sequence[int], axes: Iterable[int]) -> Perm:
    """Perm of a value after logical ``axes`` are removed (reduce without keepdims, squeeze)."""
    rank = len(perm)
    gone = {a % rank for a in axes}
    return tuple(p - sum(1 for a in gone if a < p) for p in perm if p not in gone)


def insert_axis(perm: Sequence[int], axis: int, at: int = 0) -> Perm:
    """Perm after inserting a new logical ``axis`` (stored at physical position ``at``)."""
    shifted = [p + 1 if p >= axis else p for p in perm]
    shifted.insert(at, axis)
    return tuple(shifted)


def permute_array(array: np.ndarray, perm: Sequence[int]) -> np.ndarray:
    """A constant broadcast-aligned to ``len(perm)`` dims, then stored in ``perm`` order."""
    rank = len(perm)
    if array.ndim > rank:
        raise ValueError(f"constant of rank {array.ndim} cannot broadcast to rank {rank}")
    aligned = array.reshape((1,) * (rank - array.ndim) + array.shape)
    if is_identity(perm):
        return aligned
    return np.ascontiguousarray(np.transpose(aligned, perm))
