"""Apply a plan: physically remove channels, or zero them (the masked source).

``remove_channels`` slices every recorded initializer axis down to the kept
positions (a grouped Conv's input axis group by group), runs the fix-ups
(depthwise ``group``, Resize sizes, Reshape and channel-shuffle shapes)
and rewrites the static shapes of every tracked tensor, so the graph stays
valid ONNX with smaller weights. ``mask_slices`` instead names the positions of
the class parameters (producer rows, biases, norm scale and shift, per-channel
constants) that zeroing makes the masked source, which keeps every shape: the
model the pruned one must equal.
"""
from __future__ import annotations

from typing import Any, Dict, Set, Tuple

import numpy as np

from converters.pruning.graph import ChannelGraph


def _keep_cache(cg: ChannelGraph, removed: Set[int]):
    cache: Dict[Any, np.ndarray] = {}

    def keep_of(value) -> np.ndarray:
        if value not in cache:
            cache[value] = cg.keep_positions(value, removed)
        return cache[value]
    return keep_of


def _set_array(value, array: np.ndarray) -> None:
    import onnx_ir as ir

    value.const_value = ir.tensor(np.ascontiguousarray(array), name=value.name)
    value.shape = ir.Shape(list(array.shape))


def _take_grouped(arr: np.ndarray, keep: np.ndarray, width: int, s) -> np.ndarray:
    """A grouped Conv weight [out, in / group, ...]: output block g keeps the input columns
    of input block g that stay, counted within the block. The plan keeps every block as
    wide as the others; a plan that did not is a bug, said here rather than miscomputed."""
    groups, block = s.groups, width // s.groups
    local = [keep[keep // block == g] - g * block for g in range(groups)]
    if len({len(k) for k in local}) != 1 or arr.shape[0] % groups:
        raise AssertionError(f"grouped Conv {s.node!r}: uneven channel removal "
                             f"{[block - len(k) for k in local]} per group")
    rows = arr.reshape((groups, arr.shape[0] // groups) + arr.shape[1:])
    parts = [np.take(rows[g], local[g], axis=1) for g in range(groups)]
    return np.concatenate(parts, axis=0)


def remove_channels(model: Any, cg: ChannelGraph, removed: Set[int]) -> int:
    """Slice ``model`` in place; returns how many slices changed an initializer."""
    import onnx_ir as ir

    keep_of = _keep_cache(cg, removed)
    done: Set[Tuple[int, int]] = set()
    changed = 0
    for s in cg.slices:
        key = (id(s.value), s.axis)
        if key in done:
            continue
        done.add(key)
        keep = keep_of(s.space)
        arr = s.value.const_value.numpy()
        if s.groups > 1:
            if len(keep) == len(cg.ids[s.space]):
                continue
            _set_array(s.value, _take_grouped(arr, keep, len(cg.ids[s.space]), s))
        elif len(keep) == arr.shape[s.axis]:
            continue
        else:
            _set_array(s.value, np.take(arr, keep, axis=s.axis))
        changed += 1
    for fix in cg.fixups:
        fix(keep_of)
    graph = model.graph
    for name, v in list(graph.initializers.items()):      # shapes the fix-ups replaced
        if not list(v.uses()) and not v.is_graph_output():
            graph.initializers.pop(name)
    for value, ids in cg.ids.items():
        keep = keep_of(value)
        if len(keep) == len(ids) or value.shape is None or len(value.shape) < 2:
            continue
        dims = list(value.shape)
        dims[cg.axis_of(value)] = int(len(keep))
        value.shape = ir.Shape(dims)
    return changed


def mask_slices(cg: ChannelGraph, removed: Set[int]):
    """(initializer name, axis, zeroed positions) of every masked parameter (for torch).

    Positions that are zero already (a bias-free conv exported with a zero bias) need
    no mask and are left out.
    """
    keep_of = _keep_cache(cg, removed)
    out = []
    for s in cg.slices:
        if not s.mask:
            continue
        gone = np.setdiff1d(np.arange(len(cg.ids[s.space])), keep_of(s.space))
        if len(gone) and np.any(np.take(s.value.const_value.numpy(), gone, axis=s.axis) != 0):
            out.append((s.value.name, s.axis, gone))
    return out
