"""Quantization that passes through ops which only move or select values.

MaxPool, Reshape, Transpose, Concat-free shuffles and the like never create a
value their input did not have, so their output keeps the input's scale and
zero point. TFLite even requires it for some (MAX_POOL_2D, RESHAPE), and QAT
never observes them (eager mode puts no fake-quant after a pool or a flatten).
``fill_passthrough`` gives each such output its input's entry, and, for tables of
quantized torch models, the outputs of ReLU and average pooling when the table has
none for them (eager quantization runs those with their input's parameters, so a
QAT table never names them), and the input of a ReLU PyTorch fused with the op
before it (FX graph mode's add + relu) from the ReLU's entry.
"""
from __future__ import annotations

from typing import AbstractSet, Any, List, Union

from edgert.op_registry import OpRegistry, register_all
from quant_tables.table import ActivationQuant, QuantTable

# op -> index of the data input whose quantization the output keeps
PASSTHROUGH: OpRegistry[int] = OpRegistry("pass-through quantization")
register_all(PASSTHROUGH, {op: 0 for op in (
    "MaxPool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
    "Identity", "Dropout", "Slice", "Split", "Gather", "Expand", "Tile", "DepthToSpace",
    "SpaceToDepth", "ReduceMax", "ReduceMin", "Pad", "Resize", "Upsample")}, source=__name__)


# Ops whose output a table may leave out because eager PyTorch quantization computes them
# with their input's scale and zero point (quantized ReLU, average pooling, mean): filled
# from the input when missing, never overwritten (a calibrated range is better there).
INHERIT_WHEN_MISSING: OpRegistry[int] = OpRegistry("quantization inherited when missing")
register_all(INHERIT_WHEN_MISSING, {op: 0 for op in (
    "Relu", "AveragePool", "GlobalAveragePool", "ReduceMean")}, source=__name__)


def fill_passthrough(table: QuantTable, model: Any,
                     overwrite: Union[bool, AbstractSet[str]] = False,
                     eager: bool = False) -> List[str]:
    """Give pass-through op outputs their input's quantization; return the names filled.

    Runs in graph order so chains (MaxPool -> Flatten -> Reshape) fill in one call.
    ``overwrite`` also replaces entries the table already has (True: any; a set: only
    those names). Calibration uses it: separately estimated ranges for a pool's
    input and output would force a needless requantization. ``eager``: also the
    ``INHERIT_WHEN_MISSING`` ops, for tables of eager/PT2E quantized torch models, whose
    ReLU after an add or average pool is computed with its input's parameters (a
    calibrated table should rather calibrate them: a ReLU output needs no negative range).
    """
    from quant_tables.onnx_tensors import load_model

    proto = load_model(model)
    filled: List[str] = []
    for n in proto.graph.node:
        idx = PASSTHROUGH.of_node(n)
        inherit_only = idx is None
        if inherit_only and eager:
            idx = INHERIT_WHEN_MISSING.of_node(n)
        if idx is None or len(n.input) <= idx:
            continue
        src = table.activations.get(n.input[idx])
        if src is None:
            continue
        for out in n.output:
            if not out or (out in table.activations and
                           (inherit_only or not _may_overwrite(overwrite, out))):
                continue
            table.activations[out] = _copied(src, f"shared:{n.input[idx]}")
            filled.append(out)
    if eager:
        filled += _fill_fused_inputs(table, proto)
    return filled


# Ops PyTorch fuses with the op before them (FX graph mode's add + relu, a quantized
# add_relu): the fused op's output is quantized with theirs, and the value between is
# never observed, so a table names only theirs.
FUSED_AFTER: OpRegistry[int] = OpRegistry("quantization of an op fused with the next")
register_all(FUSED_AFTER, {"Relu": 0}, source=__name__)


def _fill_fused_inputs(table: QuantTable, proto: Any) -> List[str]:
    """The input of a ``FUSED_AFTER`` op that has no entry, is made by a node and read
    by that op alone, takes the op's output entry (for values the op keeps the two are
    the same; the ones it drops never reach the int8 graph's next op)."""
    readers: dict = {}
    for n in proto.graph.node:
        for name in n.input:
            readers[name] = readers.get(name, 0) + 1
    made = {o for n in proto.graph.node for o in n.output}
    graph_io = {v.name for v in list(proto.graph.input) + list(proto.graph.output)}
    filled = []
    for n in proto.graph.node:
        idx = FUSED_AFTER.of_node(n)
        if idx is None or len(n.input) <= idx or not n.output:
            continue
        x, dst = n.input[idx], table.activations.get(n.output[0])
        if dst is None or x in table.activations or x not in made or x in graph_io \
                or readers.get(x) != 1:
            continue
        table.activations[x] = _copied(dst, f"fused:{n.output[0]}")
        filled.append(x)
    return filled


def _copied(entry: ActivationQuant, source: str) -> ActivationQuant:
    """An entry's own copy (its ``extra`` too), saying where it came from."""
    out = ActivationQuant(**{**vars(entry), "extra": dict(entry.extra)})
    out.source = source
    return out


def _may_overwrite(overwrite: Union[bool, AbstractSet[str]], name: str) -> bool:
    return overwrite if isinstance(overwrite, bool) else name in overwrite
