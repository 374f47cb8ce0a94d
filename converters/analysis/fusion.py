"""Fold activations and BatchNormalization into the conv/matmul before them.

ONNX Runtime, MNN and TFLite all run Conv+Relu (Clip, HardSwish, ...) as one
kernel and fold an inference BatchNormalization into the conv's weights, so the
tensor between them never goes to memory. Counting it would make every conv
look more memory-bound than it is on any engine edgert targets. A layer is
fused only when its input is the anchor's output, used by nothing else and not a
graph output; ``analyze(fuse=False)`` keeps every node separate.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, List

from converters.analysis.cost import LayerCost
from converters.analysis.graph import Graph

ANCHORS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "QLinearConv",
                     "MatMulInteger", "QLinearMatMul"})
ACTIVATIONS = frozenset({"Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid",
                         "HardSwish", "Tanh", "Elu", "Gelu"})
FOLDED = frozenset({"BatchNormalization"})     # absorbed into the weights: no FLOPs left


def fuse_layers(layers: List[LayerCost], graph: Graph) -> List[LayerCost]:
    consumers: Counter = Counter(t.name for n in graph.nodes if not n.folded
                                 for t in n.inputs if t is not None)
    outputs = set(graph.graph_outputs)
    first_input = {n.name: n.inputs[0].name for n in graph.nodes
                   if n.inputs and n.inputs[0] is not None}
    produced_by: Dict[str, LayerCost] = {}
    anchor_op: Dict[int, str] = {}
    result: List[LayerCost] = []
    for layer in layers:
        src = first_input.get(layer.nodes[0])
        host = produced_by.get(src) if src else None
        if (host is not None and layer.op_type in ACTIVATIONS | FOLDED
                and anchor_op.get(id(host)) in ANCHORS
                and consumers[src] == 1 and src not in outputs
                and all(t.role != "input" or t.tensor == src for t in layer.traffic)):
            _merge(host, layer, src)
            for t in layer.traffic:
                if t.role == "output":
                    produced_by[t.tensor] = host
            continue
        result.append(layer)
        anchor_op[id(layer)] = layer.op_type
        for t in layer.traffic:
            if t.role == "output":
                produced_by[t.tensor] = layer
    return result


def _merge(host: LayerCost, layer: LayerCost, via: str) -> None:
    folded = layer.op_type in FOLDED
    host.traffic = [t for t in host.traffic if not (t.role == "output" and t.tensor == via)]
    for t in layer.traffic:
        if t.tensor == via and t.role == "input":
            continue
        if folded and t.role in ("weight", "bias"):
            continue
        host.traffic.append(t)
    if not folded:
        host.flops += layer.flops
    host.op_type = f"{host.op_type}+{layer.op_type}"
    host.nodes.extend(layer.nodes)
    host.notes.extend(layer.notes)
    if folded:
        host.notes.append(f"{layer.op_type} {layer.nodes[0]!r} folded into the weights")
