"""``analyze(model)``: the cost of every layer of an ONNX model, and the totals."""
from __future__ import annotations

from collections import Counter
from typing import Any, List, Mapping, Optional, Sequence

from converters.analysis.cost import LayerCost, ModelAnalysis, OpCost, Traffic
from converters.analysis.graph import Graph, NodeView, build_graph
from converters.analysis.ops.common import UnknownShape
from converters.analysis.registry import lookup
from edgert.op_registry import op_label


def analyze(model: Any, shapes: Optional[Mapping[str, Sequence[int]]] = None,
            fuse: bool = True, name: Optional[str] = None) -> ModelAnalysis:
    """Analyze an ONNX model (path or ``onnx.ModelProto``).

    Args:
        shapes: input name -> shape for dynamic inputs (other dynamic dims are taken as 1).
        fuse: merge activations (Relu, Clip, HardSwish, ...) and BatchNormalization into
            the conv/matmul before them, as every engine edgert targets does; their
            intermediate tensor then costs no memory traffic.
        name: the model's name in reports (default: the file name or the graph name).
    """
    graph = build_graph(model, shapes)
    layers: List[LayerCost] = []
    uncounted: Counter = Counter()
    free = 0
    for node in graph.nodes:
        if node.folded:
            continue
        cost = node_cost(node)
        if cost.free:
            free += 1
            continue
        if any("no cost model" in n for n in cost.notes):
            uncounted[op_label(node.domain, node.op_type)] += 1
        layers.append(_layer(node, cost))
    if fuse:
        from converters.analysis.fusion import fuse_layers
        layers = fuse_layers(layers, graph)
    notes = list(graph.notes)
    if free:
        notes.append(f"{free} view/metadata nodes (Reshape, Shape, ...) move no data: not listed")
    if uncounted:
        notes.append("ops with no cost model, counted as memory traffic only: "
                     + ", ".join(f"{op} x{n}" for op, n in sorted(uncounted.items())))
    weights = [Traffic(t.name, "weight", t.numel or 0, t.dtype.str) for t in graph.weights]
    bias_names = {t.tensor for l in layers for t in l.traffic if t.role == "bias"}
    weights = [Traffic(w.tensor, "bias" if w.tensor in bias_names else "weight", w.elements,
                       w.dtype) for w in weights]
    return ModelAnalysis(model=name or _model_name(model, graph), layers=layers,
                         input_shapes=graph.input_shapes, weights=weights, notes=notes,
                         uncounted_ops=dict(uncounted))


def node_cost(node: NodeView) -> OpCost:
    """The registered cost of one node; memory-only with a note when there is none."""
    fn = lookup(node.domain, node.op_type)
    op = op_label(node.domain, node.op_type)
    if fn is None:
        return OpCost(notes=[f"no cost model for {op}: counted as memory traffic only"])
    try:
        return fn(node)
    except UnknownShape as exc:
        return OpCost(notes=[f"{op}: shape of {exc} unknown: FLOPs not counted, "
                             "memory traffic of the known tensors only"])


def _layer(node: NodeView, cost: OpCost) -> LayerCost:
    traffic: List[Traffic] = []
    notes = list(cost.notes)
    for i, t in enumerate(node.inputs):
        if t is None:
            continue
        role = ("bias" if i in cost.bias_inputs else "weight") if t.is_weight else "input"
        n = cost.reads.get(i, t.numel)
        if n is None:
            notes.append(f"shape of input {t.name!r} unknown: its bytes are not counted")
            continue
        traffic.append(Traffic(t.name, role, int(n), t.dtype.str))
    for t in node.outputs:
        if t is None:
            continue
        if t.numel is None:
            notes.append(f"shape of output {t.name!r} unknown: its bytes are not counted")
            continue
        traffic.append(Traffic(t.name, "output", t.numel, t.dtype.str))
    return LayerCost(name=node.name, op_type=node.op_type, flops=int(cost.flops),
                     macs=int(cost.macs), traffic=traffic, nodes=[node.name], notes=notes)


def _model_name(model: Any, graph: Graph) -> str:
    import os

    if isinstance(model, (str, os.PathLike)):
        return os.path.basename(str(model))
    return graph.name
