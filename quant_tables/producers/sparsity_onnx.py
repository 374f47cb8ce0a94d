"""Sparsity tables from ONNX models, and magnitude pruning of ONNX initializers.

The ONNX twin of ``sparsity_torch``: layer weights are the constant weight inputs
of Conv / ConvTranspose / Gemm / MatMul (``quant_tables.layer_weights``, which
knows each op's output-channel axis), keyed by initializer name. ``prune_onnx``
returns a copy of the model with the pruned values written into its initializers
(the "masked source" a converted model is verified against) plus the table.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgert.errors import InputError
from quant_tables.producers.magnitude import (LayerWeightArray, PatternSpec, PruneResult,
                                              layer_kind, prune_layers, select)
from quant_tables.producers.sparsity_torch import detect_pattern
from quant_tables.provenance import Provenance
from quant_tables.sparsity_table import SparsityTable, pattern_sparsity


def _in_axis(op_type: str, out_axis: int, rank: int) -> int:
    if op_type == "ConvTranspose":
        return 0
    if op_type == "Conv":
        return 1
    return rank - 2 if out_axis == rank - 1 else rank - 1     # Gemm / MatMul


def onnx_layers(model: Any) -> List[LayerWeightArray]:
    """Every constant layer weight of ``model`` (path, ModelProto or onnx_ir.Model)."""
    import onnx

    from quant_tables.layer_weights import constant_arrays, layer_weights
    from quant_tables.onnx_tensors import load_model

    proto = load_model(model)
    arrays = constant_arrays(proto)
    groups = {n.name: next((onnx.helper.get_attribute_value(a) for a in n.attribute
                            if a.name == "group"), 1) for n in proto.graph.node}
    seen, out = set(), []
    for lw in layer_weights(proto):
        if lw.name in seen or lw.name not in arrays:
            continue
        seen.add(lw.name)
        w = np.asarray(arrays[lw.name])
        if w.ndim < 2 or not np.issubdtype(w.dtype, np.floating):
            continue
        kind = layer_kind(lw.op_type, w.shape, int(groups.get(lw.node, 1)))
        out.append(LayerWeightArray(lw.name, w.astype(np.float32), lw.axis,
                                    _in_axis(lw.op_type, lw.axis, w.ndim), kind, lw.node))
    return out


def table_from_onnx(model: Any, pattern: Optional[str] = None, min_sparsity: float = 1e-9
                    ) -> SparsityTable:
    """A table of every layer weight of ``model`` that has zeros (pattern detected)."""
    spec_given = PatternSpec.parse(pattern) if pattern else None
    source = os.path.basename(os.fspath(model)) if isinstance(model, (str, os.PathLike)) else ""
    table = SparsityTable(provenance=Provenance(producer="sparsity_onnx", source=source,
                                                method="zero weights"))
    for lw in onnx_layers(model):
        if float(np.mean(lw.array == 0)) < min_sparsity:
            continue
        spec = spec_given or detect_pattern(lw.array, lw.out_axis, lw.in_axis)
        entry = spec.entry(lw.out_axis, lw.in_axis, mask_source="zeros", source=lw.module)
        if spec.pattern == "channel":
            red = tuple(k for k in range(lw.array.ndim) if k != lw.out_axis)
            entry.pruned = [int(c) for c in np.flatnonzero(~np.any(lw.array != 0, axis=red))]
        entry.measured = pattern_sparsity(lw.array, entry)
        table.weights[lw.name] = entry
    return table


def prune_onnx(model: Any, pattern: Union[str, PatternSpec] = "unstructured",
               targets: Union[float, Mapping[str, float]] = 0.5, scope: str = "layer",
               kinds: Sequence[str] = ("conv1x1", "conv", "fc"), include: Optional[str] = None,
               exclude: Optional[str] = None, min_params: int = 0
               ) -> Tuple[Any, SparsityTable, PruneResult]:
    """(pruned ModelProto, table, report). The input model is not changed."""
    from onnx import numpy_helper

    from quant_tables.onnx_tensors import load_model

    spec = pattern if isinstance(pattern, PatternSpec) else PatternSpec.parse(pattern)
    proto = load_model(model)
    proto = type(proto).FromString(proto.SerializeToString())
    chosen = select(onnx_layers(proto), kinds, include, exclude, min_params)
    if not chosen:
        raise InputError(f"no layer to prune (kinds {list(kinds)}, include {include!r}, "
                         f"exclude {exclude!r}, min params {min_params})")
    result = prune_layers(chosen, spec, targets, scope)
    inits = {i.name: i for i in proto.graph.initializer}
    for name, keep in result.masks.items():
        init = inits.get(name)
        if init is None:
            raise InputError(f"weight {name!r} is a Constant node, not an initializer; run "
                             "constant folding (converters.passes) before pruning")
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(np.where(keep, w, 0).astype(w.dtype), name))
    source = os.path.basename(os.fspath(model)) if isinstance(model, (str, os.PathLike)) else ""
    table = SparsityTable(weights=dict(result.entries), provenance=Provenance(
        producer="prune", source=source, method=f"magnitude {spec.label}",
        details={"scope": scope, "kinds": list(kinds),
                 "targets": dict(targets) if isinstance(targets, Mapping) else targets}))
    return proto, table, result


def weight_arrays(model: Any) -> Dict[str, np.ndarray]:
    """Layer weight arrays by name (for ``sparsity_table.check_weights``)."""
    return {lw.name: lw.array for lw in onnx_layers(model)}
