"""Full int8: the one quantization table every backend gets, checked against the graph.

``convert(..., precision="int8")`` calls ``prepare_int8`` once, on the optimized
graph, before any backend runs, so TFLite and MNN quantize from the same table:

1. the table comes from ``quant_table`` (a QuantTable or a path), from a
   quantized torch model (eager ``torch.ao.quantization`` QAT, or a torchao PT2E
   graph, prepared or converted: its float twin is exported and its sites are
   matched to the optimized graph by value, see quant_tables/SCHEMA.md), or,
   when neither is given, from calibration data;
2. names the graph lacks: a warning with the list (tables are shared between
   model variants), channel-count mismatches: an error naming the weight;
3. pass-through ops (MaxPool, Reshape, ...) inherit their input's entry;
4. tensors the int8 graph needs but the table lacks are calibrated when
   ``calibration_data`` is given, otherwise a ConversionError lists them; except
   for a QDQ source, whose Q/DQ placement is its precision: a tensor it left
   without a pair was computed in float there, so the ops that write or read it
   stay float (a float island between DEQUANTIZE and QUANTIZE, as the QDQ model
   ran it: onnxruntime's ``quantize_static`` leaves GELU's Div in float);
   weights the table lacks get per-channel scales from their own values.

Pre-activation outputs of Conv/Gemm nodes whose Relu/Relu6 both backends fuse
(the ``edgert.fused_activation`` mark) are not needed: they never exist as a
tensor in the converted model.
"""
from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from converters.errors import ConversionError
from edgert.fused_activations import TFLITE_FUSED as FUSED_CODES
# recognizing quantized sources lives with the other front-ends; re-exported for callers
from converters.frontends.quantized import (QDQSplit, TrainedProducer, is_qat_model,  # noqa: F401
                                            split_qat, split_qdq, trained_producer)

MAX_LISTED = 20


@dataclass
class Int8Plan:
    """The completed table and what was done to complete it."""

    table: Any                                       # quant_tables.QuantTable
    notes: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)      # table names the graph lacks
    calibrated: List[str] = field(default_factory=list)   # tensors filled by calibration
    weights_from_values: List[str] = field(default_factory=list)
    qat_unmatched: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"activations": len(self.table.activations), "weights": len(self.table.weights),
                "unknown": self.unknown, "calibrated": self.calibrated,
                "weights_from_values": self.weights_from_values,
                "qat_unmatched": self.qat_unmatched, "notes": self.notes}


def resolve_table(quant_table: Any):
    """A QuantTable from a table, a path, or None."""
    if quant_table is None:
        return None
    from quant_tables import QuantTable

    if isinstance(quant_table, QuantTable):
        return quant_table
    if isinstance(quant_table, (str, os.PathLike)):
        return QuantTable.load(quant_table)
    raise ConversionError(f"quant_table must be a quant_tables.QuantTable or a path, not "
                          f"{type(quant_table).__name__}")


def _listed(names: Sequence[str]) -> str:
    more = f" ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def needed_activations(proto, table) -> List[str]:
    """Float tensors an int8 graph needs parameters for (graph order)."""
    from quant_tables.onnx_tensors import float_tensors

    floats = float_tensors(proto)
    fused_pre = set()
    kept_float = set()
    for n in proto.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        if meta.get("edgert.fused_activation") in FUSED_CODES:
            fused_pre.add(n.output[0])
        if table.float_override(n.name, n.op_type, list(n.output)) is not None:
            kept_float.add(n.name or n.output[0])
    used_by_int8 = set()
    for n in proto.graph.node:
        if (n.name or n.output[0]) in kept_float:
            continue
        used_by_int8.update(n.input)
        used_by_int8.update(n.output)
    return [t for t in floats if t in used_by_int8 and t not in fused_pre]


def keep_float_islands(table, proto, tensors: Sequence[str]) -> List[str]:
    """Add a float override for every node that writes or reads one of ``tensors``
    (activations the table has no parameters for); returns those nodes' names."""
    from quant_tables.table import LayerOverride

    wanted = set(tensors)
    kept = []
    for n in proto.graph.node:
        if n.op_type == "Constant" or not (wanted & (set(n.input) | set(n.output))):
            continue
        if table.float_override(n.name, n.op_type, list(n.output)) is not None:
            continue
        table.overrides.append(LayerOverride(
            node=n.name or None, tensor=None if n.name else n.output[0],
            reason="computed in float in the QDQ source"))
        kept.append(n.name or n.output[0])
    return kept


def _qat_inputs(example_inputs: Optional[Dict[str, Any]], names: Sequence[str]):
    import torch

    if not example_inputs:
        raise ConversionError("a QAT model needs example inputs to match its fake-quant sites "
                              "to the graph")
    return tuple(torch.from_numpy(example_inputs[n]) for n in names)


def prepare_int8(model: Any, quant_table: Any = None, *, calibration_data: Any = None,
                 qat: Any = None, example_inputs: Optional[Dict[str, Any]] = None,
                 calibration_method: str = "minmax") -> Int8Plan:
    """The complete table for the optimized graph ``model`` (onnx_ir.Model or ModelProto)."""
    from quant_tables.onnx_tensors import load_model
    from quant_tables.producers.calibrate import calibrate, weight_entries
    from quant_tables.propagate import fill_passthrough
    from quant_tables.validate import check_against_graph

    proto = load_model(model)
    plan = Int8Plan(table=None)
    table = resolve_table(quant_table)
    if qat is not None:
        producer = trained_producer(qat)
        if producer is None:
            raise ConversionError(f"qat: {type(qat).__name__} is neither an eager QAT model "
                                  f"nor a PT2E graph")
        inputs = [i.name for i in proto.graph.input
                  if i.name not in {x.name for x in proto.graph.initializer}]
        res = producer.table(qat, _qat_inputs(example_inputs, inputs), proto)
        plan.qat_unmatched = res.unmatched
        plan.notes.append(f"{producer.kind}: {len(res.activation_matches)} activation and "
                          f"{len(res.weight_matches)} weight quantization sites matched to the "
                          f"graph" + (f"; unmatched: {_listed(res.unmatched)}"
                                      if res.unmatched else ""))
        plan.notes.extend(res.notes)
        table = res.table if table is None else table.merged(res.table)
    if table is None:
        if calibration_data is None:
            raise ConversionError("precision='int8' needs a quantization table (quant_table=), "
                                  "a QAT model, or calibration_data= to calibrate one")
        table = calibrate(proto, calibration_data, calibration_method)
        plan.notes.append(f"calibrated a table ({table.provenance.method}, "
                          f"{table.provenance.details.get('samples')} samples)")
        masked = table.provenance.details.get("mask_values_left_out") or {}
        if masked:
            plan.notes.append(
                f"{len(masked)} tensor(s) hold mask fill values (|v| >= 1e30, such as an "
                f"attention mask's -3.4e38), left out of their calibrated ranges: in int8 "
                f"they saturate to the range's end: {_listed(list(masked))}")
        if hasattr(calibration_data, "describe"):
            plan.notes.append(f"calibration data: {calibration_data.describe()}")
    table = copy.deepcopy(table)
    check = check_against_graph(table, proto, where="quant_table")
    if check.unknown:
        plan.unknown = check.unknown
        msg = (f"the quantization table names {len(check.unknown)} tensor(s) the graph lacks: "
               f"{_listed(check.unknown)}")
        matched = check.matched_activations + check.matched_weights
        if matched < len(check.unknown):
            source = getattr(table.provenance, "source", "") or ""
            msg += (f" (only {matched} of its names are in this graph: it looks made for "
                    f"another model" + (f", {source!r})" if source else ")"))
        plan.notes.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=3)
    fill_passthrough(table, proto)
    missing = table.missing(needed_activations(proto, table))
    from quant_tables.layer_weights import layer_weights
    missing_w = [lw.name for lw in layer_weights(proto) if lw.name not in table.weights]
    if missing_w:
        table.weights.update(weight_entries(proto, names=missing_w))
        plan.weights_from_values = sorted(set(missing_w))
        plan.notes.append(f"{len(plan.weights_from_values)} weight(s) not in the table got "
                          f"per-channel scales from their values")
    if missing and calibration_data is None and \
            getattr(table.provenance, "producer", None) == "qdq_onnx":
        kept = keep_float_islands(table, proto, missing)
        plan.notes.append(f"{len(kept)} op(s) the QDQ source computes in float (no "
                          f"Quantize/DequantizeLinear on {len(missing)} tensor(s) they write "
                          f"or read) stay float: {_listed(kept)}")
        missing = table.missing(needed_activations(proto, table))
    if missing:
        if calibration_data is None:
            raise ConversionError(
                f"the quantization table lacks {len(missing)} tensor(s) the int8 graph needs: "
                f"{_listed(missing)}; pass calibration_data= to "
                f"calibrate them, or complete the table with `edgert calibrate --table`")
        table = calibrate(proto, calibration_data, calibration_method, table=table,
                          tensors=missing, weights=False)
        plan.calibrated = missing
        plan.notes.append(f"calibrated {len(missing)} tensor(s) the table lacked "
                          f"({calibration_method})")
    plan.table = table
    return plan
