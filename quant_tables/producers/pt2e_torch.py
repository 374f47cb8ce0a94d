"""From a torchao PT2E model (``prepare_pt2e``/``prepare_qat_pt2e``, ``convert_pt2e``): a table.

PT2E quantizes an exported FX graph: ``prepare_*`` inserts observer or
fake-quant modules, ``convert_pt2e`` replaces them with
``quantized_decomposed.quantize_per_tensor -> dequantize_per_tensor`` pairs
around activations and int8 weight constants behind ``dequantize_per_channel``
(Conv+BatchNorm folded first). Both stages are accepted; the table is always
read from the converted graph:

* a **converted** graph carries the final parameters as constants of its Q/DQ
  nodes, and it is PyTorch's own simulation of the deployed model (the
  reference the int8 models are checked against);
* a **prepared** graph (calibrated or QAT-trained) is converted on a copy
  with ``convert_pt2e`` - exactly what the user would run next, so the table
  holds the scales ``convert_pt2e`` computes from the observers, and BatchNorm
  is folded the way PT2E folds it. Observers that never saw data are an error
  (``convert_pt2e`` would silently use scale 1.0).

The float model to export is recovered from the converted graph, like the QDQ
ONNX extractor does for ONNX (``qdq_onnx.py``): activation Q/DQ pairs are
removed, int8 weights become float constants holding their dequantized values,
named after the layer that uses them (``conv1.weight``). That "float twin"
computes what the deployed model computes before activation rounding, and its
weights re-quantize exactly with the table's scales. The original float model
is not needed (and would not match: its weights are not the quantized ones).

Sites are then placed on the ONNX tensors of the twin's export by value, with
the matcher the eager QAT producer uses (``value_match.py``): each activation
site is the FX node a ``quantize_per_tensor`` reads, its value taken by running
the twin on the example inputs. Ops PT2E leaves unquantized (X86Inductor's
last Linear output, for one) get no entry; the converter calibrates them when
``calibration_data`` is given, or lists them.
"""
from __future__ import annotations

import copy
import hashlib
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgert.errors import InputError
from quant_tables.errors import TableSourceError
from quant_tables.errors import TableError
from quant_tables.producers.value_match import (ActivationSite, MatchResult, WeightSite,
                                                finish, onnx_values, place_activations,
                                                place_weights, table_dtype)
from quant_tables.provenance import Provenance
from quant_tables.qparams import dtype_range
from quant_tables.table import ActivationQuant, QuantTable, WeightQuant

NAMESPACE = "quantized_decomposed"
_Q = ("quantize_per_tensor", "quantize_per_channel")
_DQ = ("dequantize_per_tensor", "dequantize_per_channel")
TWIN_CLASS = "Pt2eFloatModel"


@dataclass
class FloatTwin:
    """The float model of a converted PT2E graph and what its Q/DQ nodes said."""

    module: Any                                            # torch.fx.GraphModule
    activations: List[Tuple[str, ActivationQuant]] = field(default_factory=list)  # node, entry
    weights: Dict[str, WeightQuant] = field(default_factory=dict)   # attribute -> entry
    stage: str = "converted"
    notes: List[str] = field(default_factory=list)


def _op(node) -> Optional[str]:
    """``quantize_per_tensor`` etc. for a quantized_decomposed call, else None."""
    target = node.target if node.op == "call_function" else None
    if getattr(target, "namespace", None) != NAMESPACE:
        return None
    return target.overloadpacket.__name__ if hasattr(target, "overloadpacket") else str(target)


def _is_observer(mod) -> bool:
    """A torchao PT2E observer or fake-quant (by class, without importing torchao: it takes
    ~2 s, and a plain GraphModule must not pay for it)."""
    return any(c.__module__.startswith("torchao.quantization.pt2e")
               and c.__name__ in ("ObserverBase", "FakeQuantizeBase") for c in type(mod).__mro__)


def _observers(gm) -> List[Tuple[str, Any]]:
    """(node name, module) of every torchao observer / fake-quant call in ``gm``'s graph."""
    return [(n.name, gm.get_submodule(n.target)) for n in gm.graph.nodes
            if n.op == "call_module" and _is_observer(gm.get_submodule(n.target))]


def pt2e_stage(obj: Any) -> Optional[str]:
    """"prepared", "converted" or None (not a PT2E-quantized GraphModule)."""
    try:
        import torch.fx
    except ImportError:
        return None
    if not isinstance(obj, torch.fx.GraphModule):
        return None
    if any(_op(n) for n in obj.graph.nodes):
        return "converted"
    return "prepared" if _observers(obj) else None


def is_pt2e_model(obj: Any) -> bool:
    return pt2e_stage(obj) is not None


def _check_observed(gm) -> None:
    blind = []
    for name, mod in _observers(gm):
        obs = getattr(mod, "activation_post_process", mod)
        lo = getattr(obs, "min_val", None)
        if lo is not None and (lo.numel() == 0 or not bool(lo.isfinite().all())):
            blind.append(name)
    if blind:
        raise TableSourceError(f"the prepared PT2E model has {len(blind)} observer(s) that never "
                               f"saw data ({', '.join(blind[:10])}): run it on calibration data "
                               f"(or train it) before converting")


# prepared model -> (fingerprint of its state, its convert_pt2e result). Converting a QAT
# graph with BatchNorm takes ~11 s (torchao exports 96 fold patterns), and convert()
# needs the converted graph twice (the float twin, then the table).
_CONVERTED: "weakref.WeakKeyDictionary[Any, Tuple[str, Any]]" = weakref.WeakKeyDictionary()


def _fingerprint(model) -> str:
    import torch

    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        if isinstance(t, torch.Tensor):
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def converted_model(model: Any):
    """The converted PT2E graph: ``model`` itself, or ``convert_pt2e`` of a copy of a prepared
    one (cached while the prepared model's parameters and observer states are unchanged)."""
    stage = pt2e_stage(model)
    if stage is None:
        raise TableSourceError(f"{type(model).__name__} is not a PT2E model: quantize it with "
                               f"torchao's prepare_pt2e / prepare_qat_pt2e (+ convert_pt2e) first")
    if stage == "converted":
        return model
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    _check_observed(model)
    key = _fingerprint(model)
    hit = _CONVERTED.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    converted = convert_pt2e(move_exported_model_to_eval(copy.deepcopy(model)))
    _CONVERTED[model] = (key, converted)
    return converted


def _value(gm, arg):
    """A Q/DQ argument: a Python number, or a get_attr tensor."""
    if hasattr(arg, "op") and arg.op == "get_attr":
        return _attr(gm, arg.target)
    return arg


def _attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _params(gm, node) -> Tuple[np.ndarray, np.ndarray, Optional[int], int, int, str]:
    """(scales, zero points, axis or None, quant_min, quant_max, dtype) of a Q or DQ node."""
    per_channel = _op(node).endswith("per_channel")
    args = list(node.args) + [node.kwargs[k] for k in ("quant_min", "quant_max", "dtype")
                              if k in node.kwargs]
    scale = np.asarray(_as_numpy(_value(gm, args[1])), dtype=np.float64).reshape(-1)
    zp = np.asarray(_as_numpy(_value(gm, args[2])), dtype=np.int64).reshape(-1)
    rest = args[4:] if per_channel else args[3:]
    axis = int(args[3]) if per_channel else None
    qmin, qmax, dtype = int(rest[0]), int(rest[1]), table_dtype(rest[2])
    return scale, zp, axis, qmin, qmax, dtype


def _as_numpy(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else v


def _activation_entry(params, node_name: str) -> ActivationQuant:
    scale, zp, axis, qmin, qmax, dtype = params
    narrow = (qmin, qmax) != dtype_range(dtype)
    return ActivationQuant(scale=float(scale[0]), zero_point=int(zp[0]), dtype=dtype,
                           quant_min=qmin if narrow else None,
                           quant_max=qmax if narrow else None, source=f"pt2e:{node_name}")


def _weight_entry(params, name: str) -> WeightQuant:
    scale, zp, axis, qmin, qmax, dtype = params
    signed = dtype_range(dtype)[0] < 0
    return WeightQuant(scale=scale, zero_point=zp, axis=axis, dtype=dtype, quant_min=qmin,
                       quant_max=qmax, symmetric=bool(signed and np.all(zp == 0)),
                       source=f"pt2e:{name}")


def float_twin(model: Any) -> FloatTwin:
    """The converted graph with its Q/DQ nodes removed (see the module docstring)."""
    import torch

    stage = pt2e_stage(model)
    conv = copy.deepcopy(converted_model(model))
    g = conv.graph
    twin = FloatTwin(module=None, stage=stage or "converted")
    consts: Dict[str, Any] = {}          # new get_attr target -> dequantized tensor
    for node in list(g.nodes):
        op = None if node._erased else _op(node)
        if op is None:
            continue
        if op in _Q:
            _strip_quantize(conv, node, op, twin, consts)
        elif op in _DQ:
            _fold_constant(conv, node, [node], node.args[0], twin, consts)
        else:
            raise TableSourceError(f"PT2E node {node.name!r}: {NAMESPACE}.{op} has no place in a "
                                   f"static quantization table (dynamic or block-wise "
                                   f"quantization); only quantize/dequantize_per_tensor and "
                                   f"per-channel weights are read")
    g.eliminate_dead_code()
    root = {n.target: consts[n.target] if n.target in consts else _attr(conv, n.target)
            for n in g.nodes if n.op in ("get_attr", "call_module")}
    twin.module = torch.fx.GraphModule(root, g, class_name=TWIN_CLASS).eval()
    return twin


def _strip_quantize(gm, q, op: str, twin: FloatTwin, consts) -> None:
    """``x -> Q -> DQ -> users`` becomes ``x -> users`` (activations) or a float constant."""
    x, users = q.args[0], list(q.users)
    params = _params(gm, q)
    if any(_op(u) not in _DQ for u in users):
        raise TableSourceError(f"PT2E node {q.name!r}: its output feeds "
                               f"{sorted({str(u.target) for u in users})}, not a dequantize")
    for dq in users:
        other = _params(gm, dq)
        if not (np.allclose(other[0], params[0], rtol=1e-6, atol=0)
                and np.array_equal(other[1], params[1]) and other[2:] == params[2:]):
            raise TableError(f"PT2E tensor {x.name!r}: {q.name!r} and {dq.name!r} disagree on "
                             f"scale/zero point")
    if x.op == "get_attr":
        _fold_constant(gm, q, users, x, twin, consts, params)
        return
    if params[2] is not None:
        raise TableError(f"PT2E tensor {x.name!r}: per-channel activation quantization "
                         f"({q.name!r}) is not supported by the table format")
    entry = _activation_entry(params, x.name)
    prev = next((e for n, e in twin.activations if n == x.name), None)
    if prev is None:
        twin.activations.append((x.name, entry))
    elif (prev.scale, prev.zero_point) != (entry.scale, entry.zero_point):
        twin.notes.append(f"{x.name} is quantized twice with different parameters; kept the "
                          f"first ({prev.scale:g}, {prev.zero_point})")
    for dq in users:
        dq.replace_all_uses_with(x)
        gm.graph.erase_node(dq)
    gm.graph.erase_node(q)


def _fold_constant(gm, first, dqs, const, twin: FloatTwin, consts, params=None) -> None:
    """Constant ``C -> (Q ->) DQ``: a float constant with the dequantized values."""
    import torch

    from quant_tables.qparams import fake_quant

    if const.op != "get_attr":
        raise TableSourceError(f"PT2E node {first.name!r}: a dequantize whose input "
                               f"{const.name!r} is neither a quantize nor a constant")
    params = params or _params(gm, first)
    scale, zp, axis, qmin, qmax, dtype = params
    raw = _attr(gm, const.target).detach().cpu().numpy()
    if raw.dtype.kind == "f":
        values = fake_quant(raw, scale, zp, qmin, qmax, axis)
    else:
        from quant_tables.qparams import dequantize
        values = dequantize(raw, scale, zp, axis)
    name = _weight_name(gm, dqs, const.target, consts)
    consts[name] = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(values, np.float32)),
                                      requires_grad=False)
    with gm.graph.inserting_before(first):
        new = gm.graph.create_node("get_attr", name)
    for dq in dqs:
        dq.replace_all_uses_with(new)
        gm.graph.erase_node(dq)
    if first not in dqs:
        gm.graph.erase_node(first)
    if dtype != "int32":            # an int32 constant is a bias: backends derive its scale
        twin.weights[name] = _weight_entry(params, name)


def _weight_name(gm, dqs, fallback: str, taken) -> str:
    """``<layer>.weight`` (or ``.bias``) from the consuming op's module path, when free."""
    slots = {1: "weight", 2: "bias"}
    for dq in dqs:
        for user in dq.users:
            stack = user.meta.get("nn_module_stack") or {}
            if not stack or dq not in user.args:
                continue
            idx = list(user.args).index(dq)
            path = list(stack.values())[-1][0]
            name = ".".join(p for p in (path, slots.get(idx, f"input{idx}")) if p)
            if name not in taken and not _referenced(gm, name):
                return name
    base = fallback.replace(".", "_") + "_float"
    return base if base not in taken else f"{base}_{len(taken)}"


def _referenced(gm, target: str) -> bool:
    return any(n.op in ("get_attr", "call_module") and n.target == target
               for n in gm.graph.nodes)


def float_model(model: Any):
    """The float GraphModule to export for a PT2E model (prepared or converted)."""
    return float_twin(model).module


def _capture(module, inputs: Tuple, names: Sequence[str]) -> Dict[str, np.ndarray]:
    """Value of each named FX node when ``module`` runs on ``inputs``."""
    import torch

    wanted = set(names)
    values: Dict[str, np.ndarray] = {}

    class Tap(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted and isinstance(out, torch.Tensor):
                values[n.name] = out.detach().float().cpu().numpy()
            return out

    try:
        with torch.no_grad():
            Tap(module).run(*inputs)
    except Exception as exc:  # shape guards of the exported graph, dtype mismatches...
        raise InputError(f"the PT2E graph does not accept the example inputs "
                         f"{[tuple(x.shape) for x in inputs]}: {type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
                         f"(export it with a dynamic batch dimension, or pass inputs of the "
                         f"exported shape)") from None
    return values


def table_from_pt2e(model: Any, example_inputs: Any, onnx_model: Any,
                    source_name: str = "") -> MatchResult:
    """The table of a PT2E ``model`` (prepared or converted), keyed by the tensor names of
    ``onnx_model``: the export of ``float_model(model)``, before or after edgert's passes.

    ``example_inputs``: a tensor or tuple of tensors the graph accepts (real samples
    match best; several per batch make accidental matches rare).
    """
    import torch
    from quant_tables.layer_weights import constant_arrays

    inputs = tuple(example_inputs if isinstance(example_inputs, (tuple, list))
                   else (example_inputs,))
    inputs = tuple(torch.as_tensor(x) for x in inputs)
    twin = float_twin(model)
    if not twin.activations and not twin.weights:
        raise TableSourceError("the PT2E graph quantizes nothing (no quantize/dequantize nodes)")
    captured = _capture(twin.module, inputs, [n for n, _ in twin.activations])
    proto, values = onnx_values(onnx_model, inputs)
    result = MatchResult(QuantTable(provenance=Provenance(
        producer="pt2e_torch", source=source_name or "pt2e GraphModule",
        method=f"torchao PT2E, {twin.stage} graph (torchao {_torchao_version()}, "
               f"torch {torch.__version__})", details={"stage": twin.stage})))
    result.notes.extend(twin.notes)
    sites = [ActivationSite(n, captured[n], e) for n, e in twin.activations if n in captured]
    result.unmatched += [f"{n} (activation; not computed on the example inputs)"
                         for n, _ in twin.activations if n not in captured]
    place_activations(sites, values, result)
    weights = [WeightSite(name, [_attr(twin.module, name).detach().cpu().numpy()], entry)
               for name, entry in twin.weights.items()]
    place_weights(weights, constant_arrays(proto), result)
    return finish(result, proto)


def _torchao_version() -> str:
    try:
        import torchao
    except ImportError:   # a converted graph runs without torchao
        return "not installed"
    return str(getattr(torchao, "__version__", "?"))


def pt2e_reference(model: Any, inputs: Sequence[Any]):
    """PyTorch's own simulation: the converted PT2E graph run on ``inputs`` (the reference
    int8 models are checked against)."""
    import torch

    with torch.no_grad():
        return converted_model(model)(*inputs)
