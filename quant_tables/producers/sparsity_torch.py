"""Sparsity tables from PyTorch models, and magnitude pruning of PyTorch models.

Reading: every Conv/ConvTranspose/Linear weight whose effective value has zeros —
``torch.nn.utils.prune`` reparametrizations (``weight_orig`` * ``weight_mask``,
``mask_source: torch_prune``) or plain zeros (``zeros``) — becomes a table entry.
The pattern is detected from the zeros (whole output channels, 4x1 blocks along
output channels, 1x4 / 1x16 blocks along inputs, 2:4, else unstructured) unless
one is given.

Naming: entries are keyed by ``<module path>.weight``, the name the dynamo
exporter gives the initializer (``features.3.conv.weight``), which edgert's
passes keep (BatchNorm folding rewrites the value, not the name). A pruned
module exports the mask multiplication as a graph node and its weight under
another name, so ``bake_masks`` makes a copy with the masks applied
(``prune.remove``): the same numbers, plain parameters, and ``converters.convert``
uses it for the export and as the verification reference. For ONNX files made
elsewhere, ``rekey_by_value`` renames entries to the initializers holding the
same zero pattern.

Pruning: ``prune_torch`` computes masks with ``magnitude.prune_layers`` and
attaches them with ``torch.nn.utils.prune.custom_from_mask``, so the result is
an ordinary pruned PyTorch model (fine-tune it, then export).
"""
from __future__ import annotations

import copy
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgert.errors import InputError
from quant_tables.producers.magnitude import (LayerWeightArray, PatternSpec, PruneResult,
                                              layer_kind, prune_layers, select)
from quant_tables.provenance import Provenance
from quant_tables.sparsity_table import SparsityTable, WeightSparsity, nm_violations, pattern_sparsity

# candidate patterns tried by ``detect_pattern``, most structured first
_DETECT = ("channel", "oc4", "ic16", "ic4", "2:4")


def _weight_layers(module) -> List[Tuple[str, Any, LayerWeightArray]]:
    """(module path, module, weight as LayerWeightArray) for every prunable layer."""
    import torch
    from torch import nn

    out = []
    for path, m in module.named_modules():
        if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                              nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)):
            continue
        with torch.no_grad():
            w = m.weight.detach().cpu().numpy().astype(np.float32, copy=True)
        transposed = isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
        out_axis, in_axis = (1, 0) if transposed else (0, 1)
        if isinstance(m, nn.Linear):
            kind = "fc"
        else:
            kind = layer_kind("Conv", w.shape, m.groups)
        name = f"{path}.weight" if path else "weight"
        out.append((path, m, LayerWeightArray(name, w, out_axis, in_axis, kind, path)))
    return out


def detect_pattern(w: np.ndarray, out_axis: int = 0, in_axis: int = 1) -> PatternSpec:
    """The most structured pattern that accounts for every zero of ``w``."""
    zeros = float(np.mean(w == 0))
    if zeros == 0:
        return PatternSpec("unstructured")
    for name in _DETECT:
        spec = PatternSpec.parse(name)
        if spec.pattern == "n:m":
            if w.shape[in_axis] % spec.m == 0 and not nm_violations(w, spec.n, spec.m, in_axis) \
                    and abs(zeros - 0.5) < 1e-6:
                return spec
            continue
        entry = spec.entry(out_axis, in_axis, mask_source="zeros", measured=0.0)
        if w.ndim < 2 and spec.pattern == "block":
            continue
        per_unit = _unit_size(w.shape, spec, out_axis, in_axis)
        if abs(pattern_sparsity(w, entry) - zeros) < 0.5 / max(1, w.size // per_unit) \
                and _divides(w.shape, spec, out_axis, in_axis):
            return spec
    return PatternSpec("unstructured")


def _unit_size(shape, spec: PatternSpec, out_axis: int, in_axis: int) -> int:
    if spec.pattern == "channel":
        return int(np.prod(shape)) // shape[out_axis]
    return spec.block[0] * spec.block[1]


def _divides(shape, spec: PatternSpec, out_axis: int, in_axis: int) -> bool:
    if spec.pattern != "block":
        return True
    return shape[out_axis] % spec.block[0] == 0 and shape[in_axis] % spec.block[1] == 0


def table_from_torch(module, pattern: Optional[str] = None, min_sparsity: float = 1e-9,
                     source: str = "") -> SparsityTable:
    """A table of every layer weight of ``module`` that has zeros (masks or plain zeros)."""
    spec_given = PatternSpec.parse(pattern) if pattern else None
    table = SparsityTable(provenance=Provenance(
        producer="sparsity_torch", source=source or type(module).__name__,
        method="torch.nn.utils.prune masks and zero weights"))
    for path, m, lw in _weight_layers(module):
        masked = hasattr(m, "weight_mask")
        zeros = float(np.mean(lw.array == 0))
        if zeros < min_sparsity:
            continue
        spec = spec_given or detect_pattern(lw.array, lw.out_axis, lw.in_axis)
        entry = spec.entry(lw.out_axis, lw.in_axis,
                           mask_source="torch_prune" if masked else "zeros", source=path)
        if spec.pattern == "channel":
            red = tuple(k for k in range(lw.array.ndim) if k != lw.out_axis)
            entry.pruned = [int(c) for c in np.flatnonzero(~np.any(lw.array != 0, axis=red))]
        entry.measured = pattern_sparsity(lw.array, entry)
        table.weights[lw.name] = entry
    return table


def bake_masks(model: Any) -> Any:
    """A copy of ``model`` with every torch.nn.utils.prune mask applied (``prune.remove``)
    and every parametrization (``torch.nn.utils.parametrize``: torch.ao.pruning's
    sparsifiers before ``squash_mask``) replaced by the value it computes.

    Accepts an nn.Module, a ``(module, example_inputs)`` pair or a zoo model and
    returns the same kind; returns ``model`` itself when it holds no masks.
    """
    from dataclasses import replace

    module = getattr(model, "module", None)
    if module is not None and hasattr(model, "example_inputs"):      # converters.zoo.ZooModel
        baked = bake_masks(module)
        return model if baked is module else replace(model, module=baked)
    if isinstance(model, tuple) and len(model) == 2:
        baked = bake_masks(model[0])
        return model if baked is model[0] else (baked, model[1])
    if not _has_masks(model) and not _parametrized(model):
        return model
    import torch
    import torch.nn.utils.prune as prune
    from torch.nn.utils import parametrize

    with torch.no_grad():        # the masked weights are computed tensors: deepcopy refuses
        for m in model.modules():   # those, so refresh them as leaves (same values)
            for hook in list(getattr(m, "_forward_pre_hooks", {}).values()):
                if isinstance(hook, prune.BasePruningMethod):
                    setattr(m, hook._tensor_name, hook.apply_mask(m))
    copy_ = copy.deepcopy(model)
    for m in list(copy_.modules()):
        for hook in list(getattr(m, "_forward_pre_hooks", {}).values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
        if parametrize.is_parametrized(m):
            _unparametrize(m, torch)
    return copy_


def _unparametrize(m: Any, torch: Any) -> None:
    """torch.ao.pruning's sparsifiers (FakeSparsity), weight_norm...: the value each
    parametrization computes becomes a plain parameter under its own name. Not
    ``parametrize.remove_parametrizations``: a deep copy shares the original's injected
    class (``ParametrizedLinear``), and removing deletes the property from that class,
    which broke the user's own module (``'ParametrizedLinear' object has no attribute
    'weight'``); the copy gets its plain class back instead."""
    with torch.no_grad():
        values = {name: getattr(m, name).detach().clone() for name in m.parametrizations}
    m.__class__ = m.__class__.__bases__[0]       # parametrize injected a subclass
    del m._modules["parametrizations"]
    for name, value in values.items():
        m.register_parameter(name, torch.nn.Parameter(value, requires_grad=False))


def _parametrized(model: Any) -> bool:
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return False
    try:
        from torch.nn.utils import parametrize
    except ImportError:
        return False
    return any(parametrize.is_parametrized(m) for m in modules())


def _has_masks(model: Any) -> bool:
    modules = getattr(model, "modules", None)
    if not callable(modules):
        return False
    return any(n.endswith("_mask") for m in modules() for n, _ in m.named_buffers(recurse=False))


def prune_torch(module, pattern: Union[str, PatternSpec] = "unstructured",
                targets: Union[float, Mapping[str, float]] = 0.5, scope: str = "layer",
                kinds: Sequence[str] = ("conv1x1", "conv", "fc"), include: Optional[str] = None,
                exclude: Optional[str] = None, min_params: int = 0, source: str = ""
                ) -> Tuple[SparsityTable, PruneResult]:
    """Magnitude-prune ``module`` in place (torch.nn.utils.prune masks); table and report.

    Table keys are ``<module path>.weight``; ``targets`` may name those or regexes.
    """
    import torch
    import torch.nn.utils.prune as prune

    spec = pattern if isinstance(pattern, PatternSpec) else PatternSpec.parse(pattern)
    layers = _weight_layers(module)
    chosen = select([lw for _, _, lw in layers], kinds, include, exclude, min_params)
    if not chosen:
        raise InputError(f"no layer to prune (kinds {list(kinds)}, include {include!r}, "
                         f"exclude {exclude!r}, min params {min_params})")
    result = prune_layers(chosen, spec, targets, scope)
    by_name = {lw.name: m for _, m, lw in layers}
    for name, keep in result.masks.items():
        prune.custom_from_mask(by_name[name], "weight", torch.from_numpy(keep.astype(np.float32)))
    table = SparsityTable(weights=dict(result.entries), provenance=Provenance(
        producer="prune", source=source or type(module).__name__, method=f"magnitude {spec.label}",
        details={"scope": scope, "targets": targets if not isinstance(targets, Mapping)
                 else dict(targets), "kinds": list(kinds)}))
    return table, result


def rekey_by_value(table: SparsityTable, module, onnx_model: Any) -> Tuple[SparsityTable, List[str]]:
    """The table keyed by the initializers of ``onnx_model`` that hold each weight.

    A weight matches the constant of the same shape whose zeros sit exactly where the
    module's weight has them (BatchNorm folding scales rows but keeps zeros).
    Returns (re-keyed table, names that matched nothing).
    """
    from quant_tables.layer_weights import constant_arrays
    from quant_tables.onnx_tensors import load_model

    consts = constant_arrays(load_model(onnx_model))
    weights = {lw.name: lw.array for _, _, lw in _weight_layers(bake_masks(module))}
    out = SparsityTable(provenance=table.provenance, extra=dict(table.extra))
    missing: List[str] = []
    taken = set()
    for name, entry in table.weights.items():
        w = weights.get(name)
        if name in consts and (w is None or np.array_equal(consts[name] == 0, w == 0)):
            out.weights[name] = entry
            continue
        hit = None if w is None else next(
            (k for k, c in consts.items() if k not in taken and c.shape == w.shape
             and np.array_equal(c == 0, w == 0)), None)
        if hit is None:
            missing.append(name)
            continue
        taken.add(hit)
        out.weights[hit] = WeightSparsity.from_dict({**entry.to_dict(), "source": name})
    return out, missing
