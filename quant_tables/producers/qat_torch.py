"""From a PyTorch QAT or PTQ model (``torch.ao.quantization``, eager or FX graph mode:
fake-quant modules, or the observers of a calibrated ``prepare``/``prepare_fx`` model): a
table keyed by ONNX names.

The hard part is naming. QAT knows modules (``features.3.conv``); the
converters see ONNX tensors (``/features/features.3/conv/Conv_output_0`` with the
TorchScript exporter, ``conv2d_3`` with the dynamo exporter, the BatchNorm's
output name after BN folding...). Names differ between exporters and passes;
values do not. So the match is made by value:

1. collect the fake-quant sites: every module's ``activation_post_process``
   (it quantizes that module's output; a QuantStub's output is the model
   input) and every ``weight_fake_quant``;
2. run a copy of the model with fake quantization and observers disabled (it
   then computes the float model exactly, fused Conv+BN+ReLU modules included)
   and record each site's float tensor;
3. run the float ONNX graph with ONNX Runtime, every intermediate exposed, on
   the same inputs, and give each site the ONNX tensors holding the same values
   (same element count, equal within a relative 1e-4; reshapes such as Flatten
   match too, which is right: they keep the quantization);
4. weights match ONNX constants by value, raw or BatchNorm-folded, transposed
   for MatMul; the scales are those of the folded weight, which is what QAT
   fake-quantized and what the converter deploys;
5. outputs of MaxPool/Flatten/Reshape... inherit their input's entry
   (``propagate.py``): eager QAT does not observe them.

This works for any exporter and for the graph before or after edgert's passes,
needs no scope metadata, and reports sites it could not place. A site whose
value occurs nowhere in the graph (an op the export split differently) is
listed in ``unmatched``; calibration can fill the tensors the table still lacks.
Steps 3 and 4 are ``value_match.py``, shared with the PT2E producer.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from quant_tables.errors import TableSourceError
from quant_tables.producers.value_match import (ActivationSite, MatchResult, WeightSite,
                                                finish, onnx_values, place_activations,
                                                place_weights, table_dtype)
from quant_tables.provenance import Provenance
from quant_tables.qparams import dtype_range
from quant_tables.table import ActivationQuant, QuantTable, WeightQuant

QATResult = MatchResult   # sites are module names


def _is_fake_quant(m) -> bool:
    return hasattr(m, "scale") and hasattr(m, "zero_point") and hasattr(m, "quant_min")


def _is_observer(m) -> bool:
    """A torch.ao observer (post-training quantization: ``prepare``/``prepare_fx``): its
    parameters come from ``calculate_qparams``."""
    return hasattr(m, "calculate_qparams") and hasattr(m, "min_val") and \
        not _is_fake_quant(m)


def _is_site(m) -> bool:
    return _is_fake_quant(m) or _is_observer(m)


def _qparams(fq) -> Tuple[np.ndarray, np.ndarray, str, int, int, Any]:
    import torch

    if _is_observer(fq):
        scale_t, zp_t = fq.calculate_qparams()
    else:
        scale_t, zp_t = fq.scale, fq.zero_point
    scale = scale_t.detach().cpu().double().numpy().reshape(-1)
    zp = zp_t.detach().cpu().numpy().astype(np.int64).reshape(-1)
    qscheme = getattr(fq, "qscheme", torch.per_tensor_affine)
    return scale, zp, table_dtype(fq.dtype), int(fq.quant_min), int(fq.quant_max), qscheme


def _observed(fq) -> bool:
    obs = fq if _is_observer(fq) else getattr(fq, "activation_post_process", None)
    lo = getattr(obs, "min_val", None)
    if lo is None or lo.numel() == 0:
        return True
    return bool(np.all(np.isfinite(lo.detach().cpu().numpy())))


def activation_sites(model) -> List[Tuple[str, Any]]:
    """(site name, fake-quant) for every fake-quantized activation: eager mode's
    ``activation_post_process`` of a module (named by that module), and FX graph mode's
    fake-quant modules of their own (``prepare_qat_fx``: ``activation_post_process_3``,
    called by the graph; named by the graph node whose value it quantizes)."""
    out, seen = [], set()
    for name, mod in model.named_modules():
        fq = getattr(mod, "activation_post_process", None)
        if fq is not None and _is_site(fq) and not _is_site(mod):
            out.append((name, fq))
            seen.add(id(fq))
    seen.update(id(fq) for _, _, fq in weight_sites(model))
    seen.update(id(m.activation_post_process) for m in model.modules()   # a fake-quant's
                if _is_fake_quant(m) and hasattr(m, "activation_post_process"))  # own observer
    calls = fx_calls(model)
    for name, mod in model.named_modules():
        if _is_site(mod) and id(mod) not in seen:
            out.append((calls.get(id(mod), [name])[0], mod))
            seen.add(id(mod))
    return out


def fx_calls(model) -> Dict[int, List[str]]:
    """FX graph mode: id(fake-quant module) -> the graph nodes whose values it
    quantizes, in graph order (one module serves several: FX shares the input's
    fake-quant with a pool or a flatten after it). Empty for an eager model."""
    graph = getattr(model, "graph", None)
    out: Dict[int, List[str]] = {}
    for node in getattr(graph, "nodes", None) or []:
        if node.op != "call_module" or not node.args or not hasattr(node.args[0], "name"):
            continue
        try:
            mod = model.get_submodule(str(node.target))
        except AttributeError:
            continue
        if _is_site(mod):
            out.setdefault(id(mod), []).append(node.args[0].name)
    return out


def weight_sites(model) -> List[Tuple[str, Any, Any]]:
    """(module name, module, weight fake-quant) for every fake-quantized weight."""
    return [(name, mod, mod.weight_fake_quant) for name, mod in model.named_modules()
            if _is_fake_quant(getattr(mod, "weight_fake_quant", None) or object())
            and hasattr(mod, "weight")]


def deployed_weights(mod) -> List[np.ndarray]:
    """The weight as QAT quantizes it (BN-folded for fused Conv+BN) and the raw one."""
    import torch

    with torch.no_grad():
        w = mod.weight.detach().float()
        forms = [w]
        bn = getattr(mod, "bn", None)
        if bn is not None and getattr(bn, "running_var", None) is not None:
            gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
            factor = gamma / torch.sqrt(bn.running_var + bn.eps)
            forms.insert(0, w * factor.reshape([-1] + [1] * (w.dim() - 1)))
    return [f.cpu().numpy() for f in forms]


def _capture(model, inputs: Tuple) -> Dict[str, List[np.ndarray]]:
    """Float values each activation fake-quant receives, one per call in call order
    (fake quant and observers off).

    The hook sits on the fake-quant module itself, so sites whose owner calls it
    directly (FloatFunctional.add/cat) are captured like forward-hook sites.
    """
    import torch
    from torch.ao.quantization import disable_fake_quant, disable_observer

    sim = copy.deepcopy(model).eval()
    sim.apply(disable_fake_quant)
    sim.apply(disable_observer)
    values: Dict[str, List[np.ndarray]] = {}
    hooks = []
    for name, fq in activation_sites(sim):
        def hook(_m, args, name=name):
            if args and isinstance(args[0], torch.Tensor):
                values.setdefault(name, []).append(args[0].detach().float().cpu().numpy())
        hooks.append(fq.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            sim(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return values


def table_from_qat(model: Any, example_inputs: Any, onnx_model: Any,
                   source_name: str = "") -> QATResult:
    """The table of an eager-mode QAT ``model``, keyed by the tensor names of ``onnx_model``.

    ``onnx_model``: the float ONNX graph the table is for (path, ModelProto or
    onnx_ir.Model): the float model exported, before or after edgert's passes.
    ``example_inputs``: a tensor or tuple of tensors; real samples match best
    (random inputs work; several samples per batch make accidental matches rare).
    """
    import torch
    from quant_tables.layer_weights import constant_arrays

    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    inputs = tuple(inputs)
    if not activation_sites(model) and not weight_sites(model):
        raise TableSourceError("the model has no fake-quant modules or observers; prepare "
                               "it with torch.ao.quantization.prepare_qat (and train) or "
                               "prepare (and calibrate) first")
    proto, values = onnx_values(onnx_model, inputs)
    result = QATResult(QuantTable(provenance=Provenance(
        producer="qat_torch", source=source_name or type(model).__name__,
        method=f"torch.ao eager QAT (torch {torch.__version__})")))
    place_activations(_activation_sites(model, inputs, result), values, result)
    place_weights(_weight_sites(model), constant_arrays(proto), result)
    return finish(result, proto)


def _activation_sites(model, inputs: Tuple, result: QATResult) -> List[ActivationSite]:
    """A site per call of each fake-quant (a module used twice quantizes two values
    with one scale; FX shares one fake-quant between a value and its pool/flatten)."""
    captured = _capture(model, inputs)
    calls = fx_calls(model)
    sites = []
    for name, fq in activation_sites(model):
        if name not in captured:
            result.unmatched.append(f"{name} (activation; its fake-quant never ran)")
        elif not _observed(fq):
            result.unmatched.append(f"{name} (activation; its observer never saw data)")
        else:
            names = calls.get(id(fq)) or [name]
            for k, value in enumerate(captured[name]):
                site = names[k] if len(names) == len(captured[name]) else \
                    (name if k == 0 else f"{name} (call {k + 1})")
                sites.append(ActivationSite(site, value, _activation_entry(fq, site)))
    return sites


def _activation_entry(fq, module_name: str) -> ActivationQuant:
    scale, zp, dtype, qmin, qmax, _ = _qparams(fq)
    full = dtype_range(dtype)
    narrow = (qmin, qmax) != full
    return ActivationQuant(scale=float(scale[0]), zero_point=int(zp[0]), dtype=dtype,
                           quant_min=qmin if narrow else None, quant_max=qmax if narrow else None,
                           source=f"qat:{module_name}")


def _weight_sites(model) -> List[WeightSite]:
    import torch

    sites = []
    for name, mod, fq in weight_sites(model):
        scale, zp, dtype, qmin, qmax, qscheme = _qparams(fq)
        per_channel = qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
        symmetric = qscheme in (torch.per_channel_symmetric, torch.per_tensor_symmetric)
        entry = WeightQuant(scale=scale, zero_point=zp, axis=int(fq.ch_axis) if per_channel
                            else None, dtype=dtype, quant_min=qmin, quant_max=qmax,
                            symmetric=symmetric, source=f"qat:{name}")
        sites.append(WeightSite(name, deployed_weights(mod), entry))
    return sites


def fake_quant_reference(model: Any, inputs: Sequence[Any]):
    """The QAT model's own fake-quant simulation (eval mode, observers frozen): the
    reference the int8 models must agree with."""
    import torch
    from torch.ao.quantization import disable_observer

    sim = copy.deepcopy(model).eval()
    sim.apply(disable_observer)
    with torch.no_grad():
        return sim(*inputs)


def observer_simulation(model: Any, inputs: Sequence[Any]):
    """A post-training-quantization model's own int8 simulation (``prepare``/``prepare_fx``
    after calibration): each observer replaced by fake quantization with the parameters
    it calculated. Activations only: torch quantizes the weights at ``convert``, the
    converters per channel from the weights themselves."""
    import torch

    class _Fake(torch.nn.Module):
        def __init__(self, obs) -> None:
            super().__init__()
            scale, zp = obs.calculate_qparams()
            self.scale, self.zp = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0])
            self.lo, self.hi = int(obs.quant_min), int(obs.quant_max)

        def forward(self, x):
            return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zp, self.lo,
                                                         self.hi)

    sim = copy.deepcopy(model).eval()
    for m in list(sim.modules()):
        if _is_fake_quant(m):
            continue
        for name, child in list(m._modules.items()):   # every name: FX shares observers
            if child is not None and _is_observer(child) and _observed(child) and \
                    getattr(child, "ch_axis", None) is None:
                setattr(m, name, _Fake(child))
    with torch.no_grad():
        return sim(*inputs)


def float_model(model: Any):
    """A float copy of a QAT model: fused QAT modules ``to_float()`` (Conv+BN folded, as
    deployed), fake-quant hooks and stubs removed. Export this one to ONNX."""
    import torch.nn as nn
    from torch.ao.quantization import DeQuantStub, QuantStub

    out = copy.deepcopy(model).eval()
    _floatify(out, nn, (QuantStub, DeQuantStub))
    return out


def _floatify(module, nn, stubs) -> None:
    for name, child in [(n, c) for n, c in module._modules.items() if c is not None]:
        # every name, not named_children's first name per module: FX shares one
        # fake-quant under several names. A fake-quant child is gone whoever calls it: the owner (eager mode's
        # activation_post_process) or the graph (FX mode's activation_post_process_N)
        if isinstance(child, stubs) or (_is_site(child) and name != "weight_fake_quant"):
            setattr(module, name, nn.Identity())
            continue
        if hasattr(child, "weight_fake_quant") and hasattr(child, "to_float"):
            child = child.to_float().eval()
            setattr(module, name, child)
        _floatify(child, nn, stubs)
    if hasattr(module, "activation_post_process"):
        module.activation_post_process = nn.Identity()  # FloatFunctional calls it directly
    for hooks in (module._forward_hooks, module._forward_pre_hooks):
        for key, fn in list(hooks.items()):
            if getattr(fn, "__name__", "").startswith("_observer_forward"):
                del hooks[key]
