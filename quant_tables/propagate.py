"""Quantization that passes through ops which only move or select values.

MaxPool, Reshape, Transpose, Concat-free shuffles and the like never create a
value their input did not have, so their output keeps the input's scale and
zero point. TFLite even requires it for some (MAX_POOL_2D, RESHAPE), and QAT
never observes them (eager mode puts no fake-quant after a pool or a flatten).
``fill_passthrough`` gives each such output its input's entry.
"""
from __future__ import annotations

from typing import AbstractSet, Any, Dict, List, Union

from quant_tables.table import ActivationQuant, QuantTable

# op type -> index of the data input whose quantization the output keeps
PASSTHROUGH: Dict[str, int] = {
    op: 0 for op in (
        "MaxPool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
        "Identity", "Dropout", "Slice", "Split", "Gather", "Expand", "Tile", "DepthToSpace",
        "SpaceToDepth", "ReduceMax", "ReduceMin", "Pad", "Resize", "Upsample",
    )
}


def fill_passthrough(table: QuantTable, model: Any,
                     overwrite: Union[bool, AbstractSet[str]] = False) -> List[str]:
    """Give pass-through op outputs their input's quantization; return the names filled.

    Runs in graph order so chains (MaxPool -> Flatten -> Reshape) fill in one call.
    ``overwrite`` also replaces entries the table already has (True: any; a set: only
    those names). Calibration uses it: separately estimated ranges for a pool's
    input and output would force a needless requantization.
    """
    from quant_tables.onnx_tensors import load_model

    proto = load_model(model)
    filled: List[str] = []
    for n in proto.graph.node:
        idx = PASSTHROUGH.get(n.op_type)
        if idx is None or len(n.input) <= idx:
            continue
        src = table.activations.get(n.input[idx])
        if src is None:
            continue
        for out in n.output:
            if not out or (out in table.activations and not _may_overwrite(overwrite, out)):
                continue
            entry = ActivationQuant(**{**vars(src), "extra": dict(src.extra)})
            entry.source = f"shared:{n.input[idx]}"
            table.activations[out] = entry
            filled.append(out)
    return filled


def _may_overwrite(overwrite: Union[bool, AbstractSet[str]], name: str) -> bool:
    return overwrite if isinstance(overwrite, bool) else name in overwrite
