"""What ``convert(..., sparsity_table=...)`` does before any backend runs.

1. The table may be a SparsityTable or a path (validated on load).
2. A torch model pruned with ``torch.nn.utils.prune`` is exported from a copy
   with its masks applied (``converters.frontends.recognize``): the initializers
   then carry the parameter names the table uses, and the copy computes exactly
   what the masked model does, so it is also the verification reference.
3. ``channel`` entries are applied to the graph: the channels are physically
   removed (``converters.pruning``), and the verification reference becomes the
   source with those channels masked — the model the pruned one must equal.
4. The other entries go to the backends (sparse storage and kernels); names the
   optimized graph lacks are listed in a note, shape mismatches are an error.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, List, Optional, Tuple

from quant_tables.errors import TableError


def load_sparsity_table(obj: Any) -> Any:
    """A SparsityTable from a table, a path, or None."""
    if obj is None:
        return None
    from quant_tables import SparsityTable

    if isinstance(obj, SparsityTable):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return SparsityTable.load(obj)
    raise TableError(f"sparsity_table must be a SparsityTable or a path, not {type(obj).__name__}")


def element_entries(table: Any) -> Any:
    """The table without its channel entries (what the backends consume), or None."""
    if table is None:
        return None
    from quant_tables import SparsityTable

    kept = {k: v for k, v in table.weights.items() if v.pattern != "channel"}
    if not kept:
        return None
    return SparsityTable(weights=kept, provenance=table.provenance, extra=dict(table.extra))


def follow_renamed(table: Any, model: Any, torch_module: Any) -> Tuple[Any, List[str]]:
    """Table entries named after torch parameters the exporter renamed follow them by value.

    The dynamo exporter stores the weight of a Linear applied to [batch, tokens, features]
    as a transposed constant (``val_26``) for its MatMul. An entry for
    ``layers.0.mlp.0.weight`` then moves to the graph constant holding the same values,
    its pattern axes swapped when the constant is the transpose (the quantization
    matcher's rule, ``quant_tables.producers.value_match``).
    """
    if table is None or torch_module is None:
        return table, []
    import copy

    from quant_tables import SparsityTable
    from quant_tables.producers.value_match import by_size, find_constant

    consts = {n: v.const_value.numpy() for n, v in model.graph.initializers.items()
              if v.const_value is not None}
    missing = [n for n in table.weights if n not in consts]
    if not missing:
        return table, []
    params = dict(torch_module.named_parameters())
    params.update(dict(torch_module.named_buffers()))
    index = by_size(consts)
    weights = dict(table.weights)
    moved = []
    for name in missing:
        t = params.get(name)
        hit = find_constant([t.detach().cpu().numpy()], consts, index) if t is not None \
            else None
        if hit is None or hit[0] in weights:
            continue
        graph_name, transposed = hit
        e = copy.deepcopy(weights.pop(name))
        if transposed:
            e.axes = tuple(1 - int(a) for a in e.axes)
            e.axis = 1 - e.pattern_axis % 2
        e.source = e.source or name
        weights[graph_name] = e
        moved.append(f"{name} -> {graph_name}" + (" (transposed)" if transposed else ""))
    if not moved:
        return table, []
    out = SparsityTable(weights=weights, provenance=table.provenance, extra=dict(table.extra))
    shown = ", ".join(moved[:4]) + (f" ... and {len(moved) - 4} more" if len(moved) > 4 else "")
    return out, [f"sparsity table: {len(moved)} weight(s) found under the exporter's names "
                 f"by value: {shown}"]


def apply_channel_pruning(src: Any, model: Any, table: Any
                          ) -> Tuple[Any, Optional[Any], List[str]]:
    """Remove the table's channels from ``model`` (in place); (source for reference,
    report, notes)."""
    from converters.passes import optimize
    from converters.pruning import CLEANUP_PASSES, has_channel_entries, prune_channels

    if not has_channel_entries(table):
        return src, None, []
    optimize(model, list(CLEANUP_PASSES))
    cleaned = model.clone()
    report = prune_channels(model, table=table)
    reference, note = masked_source(src, cleaned, report)
    return reference, report, [note]


def masked_source(src: Any, cleaned: Any, report: Any) -> Tuple[Any, str]:
    """(``src`` whose reference run computes the source with the removed channels masked,
    a note saying so)."""
    from converters.pruning.mask import mask_onnx, mask_torch

    note = (f"verification reference: the source with the {report.removed_classes} removed "
            "channel(s) masked (zeroed)")
    if src.torch_module is not None:
        masked, missing = mask_torch(src.torch_module, report.mask)
        if masked is not None:
            return replace(src, torch_module=masked), note
        note += (f" in the ONNX graph (the module has no parameter named {missing[0]!r})")
    # ONNX Runtime runs ``src.model`` as the reference: make it the masked graph
    return replace(src, model=mask_onnx(cleaned, report.mask), torch_module=None,
                   _ort=None), note


def graph_name_notes(table: Any, model: Any) -> List[str]:
    """Notes on table weights the optimized graph lacks or that do not hold their zeros yet.

    A ``measured`` figure the weight contradicts is an error (a table made for other
    weights); a ``target`` the weight does not reach is a note: backends store what
    the weights hold, so prune first (``edgert prune``).
    """
    if table is None:
        return []
    from quant_tables.sparsity_table import check_graph_names, check_weights, pattern_sparsity

    notes: List[str] = []
    unknown = check_graph_names(table, model)
    if unknown and len(unknown) == len(table.weights):
        from quant_tables.errors import TableError

        source = getattr(getattr(table, "provenance", None), "source", "") or ""
        raise TableError(
            f"sparsity table: none of its {len(unknown)} weight(s) is in the graph ("
            + ", ".join(unknown[:4]) + (" ..." if len(unknown) > 4 else "") + "), so "
            "nothing of it could be honored: it looks made for another model"
            + (f" (it was made from {source!r})" if source else "") + ", or for names "
            "this export does not keep (pass the torch module the table was read from: "
            "its weights are followed by value)")
    if unknown:
        notes.append(f"sparsity table: {len(unknown)} weight(s) are not in the graph and are "
                     "ignored: " + ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else ""))
    arrays = {n: v.const_value.numpy() for n, v in model.graph.initializers.items()
              if n in table.weights and v.const_value is not None}
    check_weights(table, arrays, where="sparsity table vs the graph's weights")
    short = [n for n, e in table.weights.items() if n in arrays and e.measured is None
             and e.target is not None and pattern_sparsity(arrays[n], e) < e.target - 0.01]
    if short:
        notes.append(f"sparsity table: {len(short)} weight(s) do not reach their target yet "
                     f"and are converted as they are (prune first: edgert prune): "
                     + ", ".join(short[:8]))
    return notes
