"""Constant folding: evaluate every node whose inputs are all known, including
``Shape`` of a statically shaped value, and replace it by its result.

onnxscript's ``FoldConstantsPass`` does this well (it runs ONNX shape inference
node by node and evaluates with the ONNX reference evaluator), so this module
only adapts it. onnxscript never folds ``ConstantOfShape`` (its blacklist, to keep
models small); a constant-shaped one within the size budget is folded here, since a
TFLite graph needs the value as a constant and the tensors involved (attention
masks) are small.

The size budget is checked *before* a node is evaluated (onnxscript checks its
output limit after evaluating, by which time the memory is spent): the output's
size comes from the shape inference onnxscript has just run on the node, or from
the node's own constant inputs for the ops that make large tensors out of small
ones (ConstantOfShape, Expand, Tile, Range), in Python ints so that a shape like
``[3, 2**62]`` cannot overflow. A node over the budget is left unfolded, a refusal
naming it; one that would also *amplify* its constant inputs more than
``AMPLIFICATION`` times is refused outright with a ``ConversionError`` naming it:
a few hundred bytes of file that expand into gigabytes is a memory bomb, and
every backend and the verification would have to materialize the value anyway.

The budget: ``max_constant_bytes`` given to the pass, else ``$EDGERT_MAX_CONSTANT_BYTES``,
else ``DEFAULT_MAX_CONSTANT_BYTES`` (a module setting).
"""
from __future__ import annotations

import math
import os
from typing import List, Optional

import numpy as np
import onnx_ir as ir

from converters.errors import ConversionError
from converters.passes.base import GraphPass, PassResult, Refusal, node_label
from edgert.op_registry import is_default_domain

DEFAULT_MAX_CONSTANT_BYTES = 64 << 20   # per folded constant
MAX_CONSTANT_ENV = "EDGERT_MAX_CONSTANT_BYTES"
AMPLIFICATION = 16                      # output bytes / constant input bytes of a bomb
INPUT_SIZE_LIMIT = 8 * 1024 * 1024      # elements: onnxscript folds ops whose inputs are at most this big
OUTPUT_SIZE_LIMIT = 8 * 1024 * 1024     # elements: and whose outputs are at most this big


def max_constant_bytes(explicit: Optional[int] = None) -> int:
    """The per-constant budget: ``explicit``, else the environment, else the default."""
    if explicit is not None:
        return int(explicit)
    env = os.environ.get(MAX_CONSTANT_ENV)
    if env:
        from edgert.limits import parse_bytes

        try:
            return parse_bytes(env)
        except ValueError as exc:
            raise ConversionError(f"{MAX_CONSTANT_ENV}: {exc}") from None
    return DEFAULT_MAX_CONSTANT_BYTES


class FoldConstants(GraphPass):
    name = "fold_constants"
    description = "evaluate nodes whose inputs are constants (shape inference included)"

    def __init__(self, max_constant_bytes: Optional[int] = None,
                 shape_inference: Optional[bool] = None) -> None:
        self.max_constant_bytes = max_constant_bytes
        self.shape_inference = shape_inference      # None: only where a shape is missing
        self.inferred: List[bool] = []              # per folding run: with inference?

    def run(self, model: ir.Model) -> PassResult:
        budget = _Budget(max_constant_bytes(self.max_constant_bytes))
        before = _signature(model)
        self._fold(model, budget)
        if _fold_constant_of_shape(model, budget):   # then what it fed may fold in turn
            self._fold(model, budget)
        ir.passes.common.RemoveUnusedNodesPass()(model)
        after = _signature(model)
        return PassResult(changes=_difference(before, after),
                          refusals=list({r.node: r for r in budget.refusals}.values()))

    def _fold(self, model: ir.Model, budget: "_Budget") -> None:
        from onnxscript.optimizer._constant_folding import FoldConstantsPass

        infer = self.shape_inference
        if infer is None:
            infer = not shapes_known(model)
        self.inferred.append(infer)
        FoldConstantsPass(shape_inference=infer, input_size_limit=INPUT_SIZE_LIMIT,
                          output_size_limit=OUTPUT_SIZE_LIMIT, should_fold=budget.decide)(model)


class _Budget:
    """onnxscript's ``should_fold`` hook: None (its own rules), False (over budget) or
    a ``ConversionError`` (a bomb)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refusals: List[Refusal] = []

    def decide(self, node: ir.Node) -> Optional[bool]:
        size = output_bytes(node)
        if size is None or size <= self.limit:
            return None
        self.refuse(node, size)
        return False

    def refuse(self, node: ir.Node, size: int) -> None:
        from edgert.limits import fmt_bytes

        inputs = sum(int(v.const_value.nbytes) for v in node.inputs
                     if v is not None and v.const_value is not None)
        shape = _out_shape_text(node)
        if size > AMPLIFICATION * max(inputs, 1):
            raise ConversionError(
                f"node {node_label(node)!r} ({node.op_type}) would make a constant of "
                f"{shape}{fmt_bytes(size)} out of {fmt_bytes(inputs)} of constants, over the "
                f"limit of {fmt_bytes(self.limit)} per constant: a memory bomb, or a graph "
                f"no edge device can hold. If it is meant, raise {MAX_CONSTANT_ENV}")
        self.refusals.append(Refusal(
            "fold_constants", node_label(node), node.op_type,
            f"its output ({shape}{fmt_bytes(size)}) is over the limit of "
            f"{fmt_bytes(self.limit)} per constant ({MAX_CONSTANT_ENV})"))


def shapes_known(model: ir.Model) -> bool:
    """Whether every node output, in every graph, has a dtype and a static shape.

    Then onnxscript's per-node shape inference (half of this pass's time on the
    547-node detector of ``bench/bench_convert_time.py``) can add nothing: it keeps a
    static dim it already has (``_merge_shapes`` prefers it) and infers the dtype the
    value has, so the folder runs without it. A graph with one unknown or symbolic
    shape (a dynamic batch, a value a rewrite just made) is folded with inference, as
    before; the memory budget reads the same static shapes either way."""
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        for out in node.outputs:
            if out is None:
                continue
            if out.dtype is None or out.shape is None:
                return False
            if not all(isinstance(d, int) for d in out.shape.dims):
                return False
    return True


def output_bytes(node: ir.Node) -> Optional[int]:
    """Bytes of the node's outputs before it runs, from inferred shapes or its constant
    inputs; ``None`` when unknown."""
    total = 0
    for out in node.outputs:
        size = _static_bytes(out)
        if size is None:
            size = _estimate(node, out)
        if size is None:
            return None
        total += size
    return total


def _static_bytes(value: ir.Value) -> Optional[int]:
    if value.shape is None or value.dtype is None:
        return None
    dims = value.shape.dims
    if not all(isinstance(d, int) for d in dims):
        return None
    return math.prod(int(d) for d in dims) * _itemsize(value.dtype)


def _itemsize(dtype) -> int:
    try:
        return max(1, dtype.itemsize)
    except (AttributeError, TypeError, ValueError):
        return 8


def _ints(value: Optional[ir.Value]) -> Optional[List[int]]:
    if value is None or value.const_value is None:
        return None
    return [int(x) for x in np.asarray(value.const_value.numpy()).reshape(-1).tolist()]


def _estimate(node: ir.Node, out: ir.Value) -> Optional[int]:
    """Output bytes of the ops that make big tensors from small constants."""
    op = node.op_type
    item = _itemsize(out.dtype) if out.dtype is not None else 8
    if op == "ConstantOfShape":
        dims = _ints(node.inputs[0]) if node.inputs else None
        return None if dims is None else math.prod(max(d, 0) for d in dims) * item
    if op in ("Expand", "Tile") and len(node.inputs) == 2:
        data, arg = node.inputs[0], _ints(node.inputs[1])
        if data is None or data.const_value is None or arg is None:
            return None
        shape = list(data.const_value.shape.dims)
        if op == "Tile":
            dims = [int(a) * max(int(b), 0) for a, b in zip(shape, arg)]
        else:
            n = max(len(shape), len(arg))
            shape, arg = [1] * (n - len(shape)) + shape, [1] * (n - len(arg)) + arg
            dims = [max(int(a), int(b)) for a, b in zip(shape, arg)]
        return math.prod(dims) * item
    if op == "Range" and len(node.inputs) == 3:
        vals = [v.const_value.numpy().reshape(()).item() if v is not None and
                v.const_value is not None else None for v in node.inputs]
        if None in vals or vals[2] == 0:
            return None
        return max(0, math.ceil((vals[1] - vals[0]) / vals[2])) * item
    return None


def _out_shape_text(node: ir.Node) -> str:
    if len(node.outputs) != 1:
        return ""
    out = node.outputs[0]
    if out.shape is not None and all(isinstance(d, int) for d in out.shape.dims):
        return "x".join(str(d) for d in out.shape.dims) + " = "
    if node.op_type == "ConstantOfShape" and node.inputs:
        dims = _ints(node.inputs[0])
        return "" if dims is None else "x".join(map(str, dims)) + " = "
    return ""


def _fold_constant_of_shape(model: ir.Model, budget: _Budget) -> int:
    folded = 0
    for node in list(model.graph):
        if node.op_type != "ConstantOfShape" or not is_default_domain(node.domain):
            continue
        dims = _ints(node.inputs[0]) if node.inputs else None
        if dims is None or any(d < 0 for d in dims):
            continue
        attr = node.attributes.get("value")
        fill = attr.value.numpy().reshape(-1)[0] if attr is not None else np.float32(0)
        count = math.prod(dims)                  # Python ints: [3, 2**62] cannot overflow
        size = count * np.asarray(fill).dtype.itemsize
        if size > budget.limit:
            budget.refuse(node, size)
        if size > budget.limit or count > OUTPUT_SIZE_LIMIT:
            continue
        out = node.outputs[0]
        value = ir.Value(name=out.name, shape=ir.Shape(dims), type=out.type,
                         const_value=ir.tensor(np.full(dims, fill, dtype=np.asarray(fill).dtype),
                                               name=out.name))
        out.name = None
        out.replace_all_uses_with(value, replace_graph_outputs=True)
        model.graph.remove(node, safe=True)
        model.graph.register_initializer(value)
        folded += 1
    return folded


def _signature(model: ir.Model):
    return [(n.op_type, tuple(id(v) for v in n.inputs)) for n in model.graph]


def _difference(before, after) -> int:
    """Nodes that disappeared or appeared (folding replaces nodes by initializers)."""
    if before == after:
        return 0
    b, a = set(before), set(after)
    return max(len(b - a), len(a - b), 1)
