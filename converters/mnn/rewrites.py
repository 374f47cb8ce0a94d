"""What MNN computes wrongly, rewritten into ONNX ops it computes right.

``support.WRONG`` says which nodes MNN gets wrong (measured, with the reason); a node
it refuses that has a rewrite here is replaced by the rewrite's ops on the backend's
own copy of the graph, before anything is written, and the refusal stands for the
rest. Rewrites are MNN's alone (the shared table of decompositions,
``converters.passes.decompose``, serves every target and runs after these): they
route around MNN's kernels, e.g. ``select_last_index`` by reversing the axis, a
reverse-direction RNN by reversing time around a forward one.

Adding one: ``@rewrite("Op", "formula", check=fn)`` on ``fn(emitter, node) -> outputs``
(``graph_edit.Emitter`` builds the nodes), a reason for the node in ``support.WRONG``,
and a conformance case or a test in tests/converters/test_mnn_rewrites.py.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import onnx_ir as ir

from converters.passes.graph_edit import Emitter
from converters.passes.subgraphs import all_graphs
from edgert.op_registry import OpRegistry, default_opset

ReasonFn = Callable[[ir.Node], Optional[str]]
# marks a node a rewrite emitted in place of one of its own op type (the form MNN gets
# right: ``support.node_reason`` does not ask ``WRONG`` about it again)
REWRITTEN = "edgert.mnn_rewritten"


@dataclass(frozen=True)
class Rewrite:
    op_type: str
    formula: str
    fn: Callable[[Emitter, ir.Node], List[ir.Value]]
    check: Optional[Callable[[ir.Node], bool]] = None


REWRITES: OpRegistry[Rewrite] = OpRegistry(
    "MNN rewrite", modules=("converters.mnn.rewrite_ops", "converters.mnn.rewrite_windows"))


def rewrite(op_types: Union[str, Sequence[str]], formula: str,
            check: Optional[Callable[[ir.Node], bool]] = None):
    """Register ``fn(emitter, node)`` as MNN's rewrite of ``op_types`` (one op type, or
    several that share it: ``{op}`` in ``formula`` names each); ``check(node)`` says
    whether it can rewrite a particular node (static shapes, constant operands...)."""
    names = [op_types] if isinstance(op_types, str) else list(op_types)

    def deco(fn):
        for op_type in names:
            REWRITES.add(op_type, Rewrite(op_type, formula.replace("{op}", op_type), fn, check))
        return fn
    return deco


def rewrites() -> Dict[str, Rewrite]:
    return {r.key.label: r.value for r in sorted(REWRITES.registrations(),
                                                 key=lambda r: r.key.label)}


def entry(node: ir.Node) -> Optional[Rewrite]:
    e = REWRITES.of_node(node)
    if e is None or (e.check is not None and not e.check(node)):
        return None
    return e


def apply(model: ir.Model, reason: ReasonFn, max_rounds: int = 4) -> Counter:
    """Rewrite, in place, every node ``reason`` refuses that has a rewrite (repeated: a
    rewrite may emit an op that needs another). Returns op type -> nodes rewritten."""
    done: Counter = Counter()
    opset = default_opset(model.opset_imports, 13)
    for _ in range(max_rounds):
        todo = [n for g in all_graphs(model.graph) for n in g
                if reason(n) and entry(n) is not None]
        if not todo:
            break
        for node in todo:
            e = Emitter(node.graph, node, opset)
            e.replace(entry(node).fn(e, node))
            for new in e.nodes:     # the op's own replacement is built to be right
                if new.op_type == node.op_type and new.domain == node.domain:
                    new.meta[REWRITTEN] = True
            done[node.op_type] += 1
    return done


def needs_rewrite(model: ir.Model, reason: ReasonFn) -> bool:
    return any(reason(n) and entry(n) is not None
               for g in all_graphs(model.graph) for n in g)


def notes(done: Counter) -> List[str]:
    if not done:
        return []
    return ["rewritten for mnn (MNN computes the original wrongly): " + "; ".join(
        f"{op} x{n} as {REWRITES.lookup(op).formula}" for op, n in sorted(done.items()))]


# -- helpers ----------------------------------------------------------------------------

def static_shape(v: Optional[ir.Value]) -> Optional[List[int]]:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return [int(d) for d in v.shape]


def const_array(v: Optional[ir.Value]) -> Optional[np.ndarray]:
    if v is None:
        return None
    t = ir.convenience.get_const_tensor(v)
    return None if t is None else np.asarray(t.numpy())


def _i64(e: Emitter, values, tag: str = "i") -> ir.Value:
    return e.const(np.asarray(values, np.int64), np.int64, tag)


def reverse(e: Emitter, x: ir.Value, axis: int, n: int) -> ir.Value:
    """``x`` reversed along ``axis`` (of static size ``n``): a Gather of n-1 .. 0."""
    return e.op("Gather", [x, _i64(e, np.arange(n - 1, -1, -1), "rev")], {"axis": axis})


def _unsqueeze(e: Emitter, x: ir.Value, axes: List[int], shape) -> ir.Value:
    if e.opset >= 13:
        return e.op("Unsqueeze", [x, _i64(e, axes, "axes")], shape=shape)
    return e.op("Unsqueeze", [x], {"axes": axes}, shape=shape)

