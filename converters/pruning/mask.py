"""The masked source: the original model with the removed channels zeroed.

Verification compares a channel-pruned model against the source with the same
channels masked, the model it must equal. For a torch source the mask goes onto
a copy of the module's parameters (the dynamo exporter names initializers after
parameters: ``features.3.conv.0.weight``, ``features.3.conv.1.bias`` for the
BatchNorm shift); when a name has no parameter (an exporter that renames), the
masked ONNX graph is the reference instead.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, List, Optional, Tuple

import numpy as np

MaskItem = Tuple[str, int, np.ndarray]          # (initializer name, axis, zeroed positions)


def mask_onnx(model: Any, items: Iterable[MaskItem]) -> Any:
    """A clone of an ``onnx_ir.Model`` with ``items`` zeroed (names that are absent: skipped)."""
    import onnx_ir as ir

    out = model.clone()
    inits = out.graph.initializers
    for name, axis, gone in items:
        v = inits.get(name)
        if v is None or v.const_value is None:
            continue
        arr = np.array(v.const_value.numpy(), copy=True)
        index = [slice(None)] * arr.ndim
        index[axis] = gone
        arr[tuple(index)] = 0
        v.const_value = ir.tensor(arr, name=name)
    return out


def mask_torch(module: Any, items: Iterable[MaskItem]) -> Tuple[Optional[Any], List[str]]:
    """(masked deep copy of ``module``, names it has no tensor for). None when any is missing."""
    import torch

    items = list(items)
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    missing = [name for name, _, _ in items if name not in tensors]
    if missing:
        return None, missing
    masked = copy.deepcopy(module)
    tensors = dict(masked.named_parameters())
    tensors.update(dict(masked.named_buffers()))
    with torch.no_grad():
        for name, axis, gone in items:
            t = tensors[name]
            index = [slice(None)] * t.dim()
            index[axis] = torch.as_tensor(np.asarray(gone), dtype=torch.long)
            t[tuple(index)] = 0
    return masked, []
