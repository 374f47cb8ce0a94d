"""Control flow whose outcome is known at conversion time, written out.

- ``If`` whose condition is a constant: its chosen branch's nodes take its place
  (constant folding usually does this first; this catches what it leaves).
- ``Loop`` whose trip count is a constant (at most ``MAX_TRIPS``, with at most
  ``MAX_NODES`` nodes after unrolling) and whose condition cannot stop it early
  (absent or constant true, and the body passes ``cond_in`` on unchanged or returns a
  constant true): the body is copied once per iteration with ``iter_num`` a
  constant, the carried values threaded through, and each scan output stacked by
  ``Unsqueeze`` + ``Concat``. A body holding another subgraph is left as a loop.

What stays (a run-time condition or trip count) is converted as control flow by
each backend (MNN's If/While, LiteRT's IF/WHILE subgraphs); each loop left is a
refusal in this pass's report, with the reason.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult, Refusal, node_label
from converters.passes.subgraphs import all_graphs, subgraphs_of
from edgert.op_registry import default_opset, is_default_domain

MAX_TRIPS = 64
MAX_NODES = 4096


def _const(v: Optional[ir.Value]) -> Optional[np.ndarray]:
    if v is None:
        return None
    t = ir.convenience.get_const_tensor(v)
    return None if t is None else np.asarray(t.numpy())


class _Copier:
    """Copies a subgraph's nodes into ``graph`` before ``anchor``, values renamed with
    ``suffix``; ``env`` maps the subgraph's values to the copies' (or outer) values."""

    def __init__(self, graph: ir.Graph, anchor: ir.Node, opset: int) -> None:
        self.graph, self.anchor, self.opset = graph, anchor, opset
        self.consts: Dict[int, ir.Value] = {}

    def constant(self, name: str, array: np.ndarray) -> ir.Value:
        v = ir.Value(name=self._free(name), const_value=ir.tensor(array))
        v.shape, v.dtype = ir.Shape(list(array.shape)), ir.DataType.from_numpy(array.dtype)
        self.graph.register_initializer(v)
        return v

    def _free(self, name: str) -> str:
        while name in self.graph.initializers:
            name += "_"
        return name

    def _initializer(self, v: ir.Value) -> ir.Value:
        """A subgraph initializer registered (once) in the target graph."""
        if id(v) not in self.consts:
            self.consts[id(v)] = self.constant(f"{v.name}_c", np.asarray(v.const_value.numpy()))
        return self.consts[id(v)]

    def copy(self, sub: ir.Graph, env: Dict[ir.Value, ir.Value], suffix: str) -> None:
        for v in sub.initializers.values():
            env.setdefault(v, self._initializer(v))
        new_nodes = []
        for node in sub:
            inputs = [None if v is None else env.get(v, v) for v in node.inputs]
            attrs = [ir.Attr(a.name, a.type, a.value) for a in node.attributes.values()]
            new = ir.Node(node.domain, node.op_type, inputs, attributes=attrs,
                          num_outputs=len(node.outputs), version=node.version,
                          name=f"{node.name or node.op_type}{suffix}")
            for old, out in zip(node.outputs, new.outputs):
                out.name = f"{old.name}{suffix}" if old.name else None
                out.shape, out.type = old.shape, old.type
                env[old] = out
            new_nodes.append(new)
        self.graph.insert_before(self.anchor, new_nodes)

    def stack(self, items: Sequence[ir.Value], name: str) -> ir.Value:
        """``items`` stacked on a new axis 0 (Unsqueeze each, then Concat)."""
        rows = []
        for k, v in enumerate(items):
            if self.opset >= 13:
                axes = self.constant(f"{name}_axes", np.array([0], np.int64))
                node = ir.Node("", "Unsqueeze", [v, axes], name=f"{name}_row{k}")
            else:
                node = ir.Node("", "Unsqueeze", [v], attributes=[ir.AttrInt64s("axes", [0])],
                               name=f"{name}_row{k}")
            out = node.outputs[0]
            out.name, out.type = f"{name}_row{k}", v.type
            if v.shape is not None:
                out.shape = ir.Shape([1] + list(v.shape))
            self.graph.insert_before(self.anchor, node)
            rows.append(out)
        cat = ir.Node("", "Concat", rows, attributes=[ir.AttrInt64("axis", 0)], name=name)
        out = cat.outputs[0]
        out.name, out.type = name, items[0].type
        if items[0].shape is not None:
            out.shape = ir.Shape([len(items)] + list(items[0].shape))
        self.graph.insert_before(self.anchor, cat)
        return out


def _take_over(graph: ir.Graph, old: ir.Value, new: ir.Value, anchor: ir.Node) -> None:
    """``new`` replaces ``old`` everywhere, under ``old``'s name. A value that already has a
    name of its own to keep (a graph input, an initializer, an outer value, an output)
    is forwarded by an Identity."""
    made_here = new.producer() is not None and new.producer().graph is graph
    if not made_here or new.is_graph_output() or new.is_graph_input():
        ident = ir.Node("", "Identity", [new], name=f"{old.name}_forward")
        graph.insert_before(anchor, ident)
        new = ident.outputs[0]
    new.shape = new.shape or old.shape
    new.type = new.type or old.type
    name = old.name
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    old.name = None
    new.name = name


def fold_if(node: ir.Node, opset: int) -> Optional[str]:
    """Replace an If with a constant condition by its branch; None when done, else why not."""
    cond = _const(node.inputs[0])
    if cond is None:
        return "the condition is computed at run time"
    branch = node.attributes["then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"].value
    graph = node.graph
    env: Dict[ir.Value, ir.Value] = {}
    _Copier(graph, node, opset).copy(branch, env, f"__{node_label(node)}")
    for old, out in zip(node.outputs, branch.outputs):
        _take_over(graph, old, env.get(out, out), node)
    graph.remove(node, safe=True)
    return None


def _cond_is_passed_on(body: ir.Graph) -> bool:
    """The body's condition output is its cond input unchanged, or a constant true."""
    out = body.outputs[0]
    c = _const(out)
    if c is not None:
        return bool(c.reshape(-1)[0])
    if out is body.inputs[1]:
        return True
    p = out.producer()
    return (p is not None and p.op_type == "Identity" and is_default_domain(p.domain)
            and p.inputs[0] is body.inputs[1])


def loop_refusal(node: ir.Node) -> Optional[str]:
    """Why ``node`` (a Loop) is not unrolled, or None."""
    m = _const(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    if m is None:
        return "the trip count is not a constant"
    trips = int(m.reshape(-1)[0])
    body = node.attributes["body"].value
    cond = node.inputs[1] if len(node.inputs) > 1 else None
    c = _const(cond) if cond is not None else np.array(True)
    if c is None or not bool(c.reshape(-1)[0]) or not _cond_is_passed_on(body):
        return "the loop's condition may stop it early"
    if trips <= 0:
        return "the loop runs no iteration (its scan outputs would be empty tensors)"
    if trips > MAX_TRIPS or trips * len(body) > MAX_NODES:
        return (f"{trips} iterations of {len(body)} nodes is over the unrolling limit "
                f"({MAX_TRIPS} iterations, {MAX_NODES} nodes)")
    if any(subgraphs_of(n) for n in body):
        return "the body holds another subgraph"
    return None


def unroll_loop(node: ir.Node, opset: int) -> None:
    body = node.attributes["body"].value
    graph = node.graph
    trips = int(_const(node.inputs[0]).reshape(-1)[0])
    carried = list(node.inputs[2:])
    n_carried = len(carried)
    copier = _Copier(graph, node, opset)
    label = node_label(node)
    cond0 = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] is not None else \
        copier.constant(f"{label}_true", np.array(True))
    scans: List[List[ir.Value]] = [[] for _ in body.outputs[1 + n_carried:]]
    state = list(carried)
    for k in range(trips):
        env: Dict[ir.Value, ir.Value] = {
            body.inputs[0]: copier.constant(f"{label}_iter{k}", np.array(k, np.int64)),
            body.inputs[1]: cond0}
        env.update(zip(body.inputs[2:], state))
        copier.copy(body, env, f"__{label}_{k}")
        outs = [env.get(v, v) for v in body.outputs]
        state = outs[1:1 + n_carried]
        for j, v in enumerate(outs[1 + n_carried:]):
            scans[j].append(v)
    finals = state + [copier.stack(items, f"{label}_scan{j}") for j, items in enumerate(scans)]
    for old, new in zip(node.outputs, finals):
        _take_over(graph, old, new, node)
    graph.remove(node, safe=True)


class FoldControlFlow(GraphPass):
    name = "fold_control_flow"
    description = "If with a constant condition -> its branch; Loop with a constant trip count unrolled"

    def run(self, model: ir.Model) -> PassResult:
        opset = default_opset(model.opset_imports, 13)
        result = PassResult()
        folded = unrolled = 0
        for graph in list(all_graphs(model.graph)):
            for node in list(graph):
                if not is_default_domain(node.domain) or node.graph is not graph:
                    continue
                if node.op_type == "If":
                    why = fold_if(node, opset)
                    folded += why is None
                elif node.op_type == "Loop":
                    why = loop_refusal(node)
                    if why is None:
                        unrolled_trips = int(_const(node.inputs[0]).reshape(-1)[0])
                        unroll_loop(node, opset)
                        unrolled += 1
                        result.notes.append(f"unrolled Loop {node_label(node)!r} "
                                            f"({unrolled_trips} iterations)")
                else:
                    continue
                if why:
                    result.refusals.append(Refusal(self.name, node_label(node), node.op_type,
                                                   why))
        result.changes = folded + unrolled
        if folded:
            result.notes.append(f"replaced {folded} If node(s) with a constant condition by "
                                "their branch")
        return result
