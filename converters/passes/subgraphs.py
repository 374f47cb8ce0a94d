"""Questions about control-flow subgraphs (an ``If``'s branches, a ``Loop``'s body) that
the passes and both backends ask: which graphs a node holds, every graph of a model,
and which values of the enclosing graphs a subgraph reads (ONNX subgraphs capture
outer values by name instead of taking them as inputs)."""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional

import onnx_ir as ir

from edgert.op_registry import is_default_domain

CONTROL_FLOW_OPS = ("If", "Loop", "Scan")


def subgraphs_of(node: ir.Node) -> Dict[str, ir.Graph]:
    """The node's graph attributes, by attribute name (``then_branch``, ``body``, ...)."""
    out: Dict[str, ir.Graph] = {}
    for name, a in node.attributes.items():
        if a.type == ir.AttributeType.GRAPH:
            out[name] = a.value
        elif a.type == ir.AttributeType.GRAPHS:
            for k, g in enumerate(a.value):
                out[f"{name}[{k}]"] = g
    return out


def all_graphs(graph: ir.Graph) -> Iterator[ir.Graph]:
    """``graph`` and every graph nested in it, outer ones first."""
    yield graph
    for node in graph:
        for sub in subgraphs_of(node).values():
            yield from all_graphs(sub)


def has_subgraphs(model: ir.Model) -> bool:
    return any(subgraphs_of(n) for n in model.graph)


def _is_const(v: ir.Value) -> bool:
    if v.const_value is not None:
        return True
    p = v.producer()
    return p is not None and p.op_type == "Constant" and is_default_domain(p.domain)


def captured_values(graph: ir.Graph, constants: bool = False) -> List[ir.Value]:
    """Values ``graph`` (or a graph nested in it) reads from enclosing graphs, in order of
    first use; outer constants only when ``constants``."""
    made = set(graph.inputs) | set(graph.initializers.values())
    seen: Dict[int, ir.Value] = {}

    def read(v: Optional[ir.Value]) -> None:
        if v is None or v in made or id(v) in seen:
            return
        if constants or not _is_const(v):
            seen[id(v)] = v

    for node in graph:
        for v in node.inputs:
            read(v)
        for sub in subgraphs_of(node).values():
            for v in captured_values(sub, constants):
                read(v)
        made.update(o for o in node.outputs if o is not None)
    for v in graph.outputs:
        read(v)
    return list(seen.values())


def replace_in_graph(graph: ir.Graph, old: ir.Value, new: ir.Value) -> int:
    """Make every reader of ``old`` inside ``graph`` (and graphs nested in it) read ``new``,
    and a ``graph`` output that is ``old`` be ``new``. Returns the uses changed."""
    changed = 0
    for g in all_graphs(graph):
        for node in g:
            for i, v in enumerate(node.inputs):
                if v is old:
                    node.replace_input_with(i, new)
                    changed += 1
    for i, v in enumerate(graph.outputs):
        if v is old:
            graph.outputs[i] = new
            changed += 1
    return changed
