"""Place quantization sites of a PyTorch model on the tensors of its ONNX export, by value.

Training-side tools know *their* names for what they quantize (eager QAT: module
names such as ``features.3.conv``; PT2E: FX node names such as ``relu_1``).
The converters see ONNX tensor names, which depend on the exporter and on
graph passes. Values do not: a producer hands this module its sites with the
float value each one sees on some inputs and its quantization entry, and the
sites land on every ONNX tensor holding the same values (same element count,
equal within a relative ``RTOL``; a Flatten or Reshape of a site matches too,
which is right since it keeps the quantization). Weights land on the ONNX
constant holding one of their forms (raw, BatchNorm-folded, dequantized),
transposed too (MatMul stores ``[K, N]``; the per-channel axis flips).

Both torch producers (``qat_torch``, ``pt2e_torch``) use this one matcher, so a
fix or a new exporter quirk is handled once.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgert.errors import InputError
from quant_tables.errors import TableSourceError
from quant_tables.table import ActivationQuant, QuantTable, WeightQuant

RTOL = 1e-4


@dataclass
class MatchResult:
    """A table keyed by ONNX names and where each producer site landed."""

    table: QuantTable
    activation_matches: Dict[str, List[str]] = field(default_factory=dict)  # site -> tensors
    weight_matches: Dict[str, str] = field(default_factory=dict)            # site -> initializer
    unmatched: List[str] = field(default_factory=list)                      # sites not placed
    notes: List[str] = field(default_factory=list)


@dataclass
class ActivationSite:
    """A quantized activation: its producer-side name, float value and entry."""

    name: str
    value: np.ndarray
    entry: ActivationQuant


@dataclass
class WeightSite:
    """A quantized weight: the forms its ONNX constant may hold, and its entry
    (``axis`` in the producer's layout; flipped when the constant is transposed)."""

    name: str
    forms: List[np.ndarray]
    entry: WeightQuant


def table_dtype(torch_dtype) -> str:
    """The table's dtype name for a torch (quantized) dtype."""
    import torch

    names = {torch.quint8: "uint8", torch.qint8: "int8", torch.qint32: "int32",
             torch.uint8: "uint8", torch.int8: "int8", torch.int16: "int16",
             torch.uint16: "uint16", torch.int32: "int32"}
    if torch_dtype not in names:
        raise TableSourceError(f"quantization dtype {torch_dtype} has no table dtype")
    return names[torch_dtype]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Same element count and equal values within ``RTOL`` of the larger magnitude."""
    if a.size != b.size:
        return False
    a, b = a.reshape(-1), b.reshape(-1).astype(np.float32)
    scale = max(1.0, float(np.abs(a).max()) if a.size else 1.0)
    return bool(np.max(np.abs(a - b)) <= RTOL * scale) if a.size else False


def by_size(arrays: Dict[str, np.ndarray]) -> Dict[int, List[str]]:
    idx: Dict[int, List[str]] = {}
    for k, v in arrays.items():
        idx.setdefault(int(np.asarray(v).size), []).append(k)
    return idx


def onnx_values(onnx_model: Any, inputs: Sequence[Any]) -> Tuple[Any, Dict[str, np.ndarray]]:
    """(ModelProto, every float tensor's value) of ``onnx_model`` run on ``inputs``."""
    from quant_tables.onnx_tensors import TensorTap, load_model

    proto = load_model(onnx_model)
    tap = TensorTap(proto)
    if len(tap.inputs) != len(inputs):
        raise InputError(f"the ONNX model has {len(tap.inputs)} inputs, "
                         f"{len(inputs)} example inputs were given")
    feeds = {i.name: _numpy(x) for i, x in zip(tap.inputs, inputs)}
    return proto, tap.run(feeds)


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return np.asarray(x.detach().cpu().numpy())
    return np.asarray(x)


def place_activations(sites: Sequence[ActivationSite], values: Dict[str, np.ndarray],
                      result: MatchResult) -> None:
    """Every ONNX tensor equal to a site's value gets its entry (the last site wins a
    tensor several sites match: sites come in graph order, so a Flatten's own
    site beats the one before it)."""
    index = by_size(values)
    owner: Dict[str, int] = {}
    for order, site in enumerate(sites):
        hits = [t for t in index.get(int(site.value.size), []) if close(site.value, values[t])]
        if not hits:
            result.unmatched.append(f"{site.name} (activation; no ONNX tensor holds its values)")
            continue
        result.activation_matches[site.name] = hits
        for t in hits:
            owner[t] = order
    for tensor, order in owner.items():
        result.table.activations[tensor] = copy.deepcopy(sites[order].entry)


def find_constant(forms: Sequence[np.ndarray], consts: Dict[str, np.ndarray],
                   index: Dict[int, List[str]]) -> Optional[Tuple[str, bool]]:
    """(constant name, transposed) of the first constant holding one of ``forms``."""
    for cand in index.get(int(forms[0].size), []):
        c = np.asarray(consts[cand])
        if c.dtype.kind != "f":
            continue
        for f in forms:
            if c.shape == f.shape and close(f, c):
                return cand, False
            if f.ndim == 2 and c.shape == f.T.shape and close(f.T, c):
                return cand, True
    return None


def place_weights(sites: Sequence[WeightSite], consts: Dict[str, np.ndarray],
                  result: MatchResult) -> None:
    index = by_size(consts)
    for site in sites:
        hit = find_constant(site.forms, consts, index)
        if hit is None:
            result.unmatched.append(f"{site.name} (weight; no ONNX constant holds it)")
            continue
        tensor, transposed = hit
        entry = copy.deepcopy(site.entry)
        if entry.axis is not None and transposed:
            entry.axis = 1 - entry.axis
        result.table.weights[tensor] = entry
        result.weight_matches[site.name] = tensor


def finish(result: MatchResult, proto: Any) -> MatchResult:
    """Pass-through outputs (MaxPool, Flatten...) inherit their input's entry."""
    from quant_tables.propagate import fill_passthrough

    filled = fill_passthrough(result.table, proto, eager=True)
    fused = [t for t in filled if result.table.activations[t].source.startswith("fused:")]
    shared = [t for t in filled if t not in fused]
    for names, what in ((shared, "pass-through tensors took their input's quantization"),
                        (fused, "inputs of a ReLU fused with the op before it took the "
                                "ReLU's quantization")):
        if names:
            result.notes.append(f"{len(names)} {what}: {names[:5]}"
                                f"{' ...' if len(names) > 5 else ''}")
    return result
