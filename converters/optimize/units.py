"""The units of a search: segments of the graph that are decided, built and timed as one.

A graph is cut where a single tensor is live (every later node reads only it, or
values made after it): the input of the stem, the output of each residual block,
the pooled features. Between two cuts lies a segment. Choices inside a segment
change only that segment, so its latency can be timed in context (one model with
this segment changed, everything else as the base) and added up: that is what
makes a per-unit latency table predictive (``latency.py``).

Channel pruning has to respect this. A cut tensor keeps its channels, so only
*local* channel groups are searched: classes made by one layer alone (the hidden
width of an inverted residual block, a stem that feeds one block) and not united
with others by a residual Add. A cut tensor that carries such a group is not a
boundary (the segments on both sides become one unit), so each unit owns its
groups whole. Residual streams (channels shared by every block writing them) keep
their width.

Each unit lists its weighted layers (Conv/ConvTranspose/Gemm/MatMul with a constant
weight): the per-layer decisions table is written from them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import numpy as np

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class Layer:
    """A weighted op of a unit."""

    node: str
    op_type: str
    weight: str
    kind: str                    # conv1x1, conv, depthwise, grouped, fc
    out_channels: int
    params: int

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))


@dataclass
class Unit:
    """One segment of the graph between two cut tensors."""

    index: int
    name: str                    # e.g. "features.3" (the weights' common module path)
    nodes: List[str]             # node names, graph order
    op_types: List[str]
    outputs: List[str]           # every tensor its nodes write
    input: str                   # the cut tensor it reads
    output: str                  # the cut tensor it writes (or a graph output)
    layers: List[Layer] = field(default_factory=list)
    prunable: List[str] = field(default_factory=list)       # weights of its local groups
    removable: int = 0           # channels those groups could lose
    sparsifiable: List[str] = field(default_factory=list)   # 1x1 conv weights
    readers: List[str] = field(default_factory=list)        # its nodes that read ``input``
    writer: str = ""                                        # its node that writes ``output``

    def to_dict(self) -> Dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "layers"}
        d["layers"] = [l.to_dict() for l in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Unit":
        d = dict(d)
        d["layers"] = [Layer(**l) for l in d.get("layers", [])]
        return cls(**d)

    def describe(self) -> str:
        ops = ", ".join(_short(l) for l in self.layers) or ", ".join(self.op_types[:4])
        return f"{self.name} ({ops})"


def _short(layer: Layer) -> str:
    return {"conv1x1": "1x1", "depthwise": "dw", "fc": "fc", "grouped": "gconv"}.get(
        layer.kind, "conv")


def find_units(model: Any) -> List[Unit]:
    """The units of ``model`` (an onnx_ir.Model, cleaned as for channel pruning)."""
    from converters.pruning import analyze_channels
    from converters.pruning.plan import _groups

    nodes = list(model.graph)
    ca = analyze_channels(model)
    local = _local_roots(ca, _groups(ca))
    cuts = _cut_points(model, nodes)
    carried = {v.name for v, ids in ca.graph.ids.items()
               if v is not None and set(ca.graph.roots(ids).tolist()) & local}
    cuts = [(i, name) for i, name in cuts if name not in carried]
    bounds = [-1] + [i for i, _ in cuts if i < len(nodes) - 1] + [len(nodes) - 1]
    inputs = [v.name for v in model.graph.inputs if v.const_value is None]
    cut_names = [inputs[0] if inputs else ""] + [n for i, n in cuts if i < len(nodes) - 1]
    units = []
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        seg = nodes[lo + 1:hi + 1]
        out = cut_names[k + 1] if k + 1 < len(cut_names) else _last_output(model, seg)
        units.append(_unit(k, seg, cut_names[k], out, ca, local))
    _name_units(units)
    return units


def _cut_points(model: Any, nodes: List[Any]):
    """(node index, tensor) after which that tensor is the only live value."""
    index = {id(n): i for i, n in enumerate(nodes)}
    outputs = {v.name for v in model.graph.outputs}
    last: Dict[str, int] = {}
    for i, n in enumerate(nodes):
        for v in n.inputs:
            if v is not None and not _is_const(v):
                last[v.name] = max(last.get(v.name, -1), i)
    for name in outputs:
        last[name] = len(nodes)
    live: Set[str] = {v.name for v in model.graph.inputs if v.const_value is None}
    cuts = []
    for i, n in enumerate(nodes):
        for v in n.outputs:
            if v is not None and last.get(v.name, -1) > i:
                live.add(v.name)
        live = {t for t in live if last.get(t, -1) > i}
        if len(live) == 1 and i + 1 < len(nodes) and not any(
                v.name in live for v in model.graph.inputs):
            cuts.append((i, next(iter(live))))
    del index
    return cuts


def _is_const(v) -> bool:
    from converters.layout.graph import is_const

    return is_const(v)


def _local_roots(ca: Any, groups) -> Set[int]:
    """Class roots of local groups: made by one layer, at least one removable."""
    out: Set[int] = set()
    for roots, weights in groups.items():
        if len(weights) == 1 and any(ca.removable(r) for r in roots):
            out.update(roots)
    return out


def _last_output(model: Any, seg: List[Any]) -> str:
    outs = [v.name for v in model.graph.outputs]
    made = {v.name for n in seg for v in n.outputs if v is not None}
    return next((o for o in outs if o in made), outs[0] if outs else "")


def _unit(k: int, seg: List[Any], inp: str, out: str, ca: Any, local: Set[int]) -> Unit:
    unit = Unit(index=k, name=f"u{k}", nodes=[n.name for n in seg],
                op_types=[n.op_type for n in seg],
                outputs=[v.name for n in seg for v in n.outputs if v is not None],
                input=inp, output=out)
    unit.readers = [n.name for n in seg if any(v is not None and v.name == inp
                                               for v in n.inputs)]
    unit.writer = next((n.name for n in seg if any(v is not None and v.name == out
                                                   for v in n.outputs)), "")
    for n in seg:
        layer = _layer(n)
        if layer is None:
            continue
        unit.layers.append(layer)
        p = ca.by_weight.get(layer.weight)
        if p is not None and p.node == (n.name or p.node):
            roots = set(ca.producer_roots(layer.weight).tolist())
            free = [r for r in roots if r in local and ca.removable(r)]
            if free:
                unit.prunable.append(layer.weight)
                unit.removable += len(free)
        if layer.kind == "conv1x1":
            unit.sparsifiable.append(layer.weight)
    return unit


def _layer(node) -> Optional[Layer]:
    from converters.layout.graph import attr

    if node.op_type not in LAYER_OPS or len(node.inputs) < 2:
        return None
    w = node.inputs[1]
    if w is None or w.const_value is None:
        return None
    shape = list(w.const_value.shape)
    group = int(attr(node, "group", 1)) if node.op_type == "Conv" else 1
    if node.op_type in ("Gemm", "MatMul"):
        kind, out = "fc", int(shape[0] if attr(node, "transB", 0) else shape[-1])
    elif group > 1:
        kind = "depthwise" if shape[1] == 1 and group == shape[0] else "grouped"
        out = int(shape[0])
    else:
        kind = "conv1x1" if all(int(s) == 1 for s in shape[2:]) else "conv"
        out = int(shape[1] if node.op_type == "ConvTranspose" else shape[0])
    return Layer(node=node.name, op_type=node.op_type, weight=w.name, kind=kind,
                 out_channels=out, params=int(np.prod(shape)))


def _name_units(units: List[Unit]) -> None:
    """Name each unit after the module path its weights share (``features.3``), else
    ``u<index>``; names are made unique."""
    seen: Dict[str, int] = {}
    for u in units:
        paths = [_module_path(l.weight) for l in u.layers]
        paths = [p for p in paths if p]
        name = _common_prefix(paths) if paths else ""
        name = name or f"u{u.index}"
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 0
        u.name = name


def _module_path(weight: str) -> str:
    m = re.match(r"^(.*)\.(weight|bias)$", weight)
    return m.group(1) if m else ""


def _common_prefix(paths: List[str]) -> str:
    """``features.3.conv`` for weights all under it; ``features.0..features.2`` when
    they share less than two levels; "" for none."""
    parts = [p.split(".") for p in paths]
    common: List[str] = []
    for pieces in zip(*parts):
        if len(set(pieces)) != 1:
            break
        common.append(pieces[0])
    if len(common) >= 2 or len(paths) == 1:
        return ".".join(common) or paths[0]
    first, last = ".".join(parts[0][:2]), ".".join(parts[-1][:2])
    return first if first == last else f"{first}..{last}"
