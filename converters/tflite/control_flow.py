"""Control flow: ONNX ``If`` -> TFLite IF, ONNX ``Loop`` -> TFLite WHILE, on subgraphs.

An ONNX branch or loop body is a graph that reads values of the enclosing graphs
directly (captured values); a TFLite subgraph reads only its own inputs. So every
captured value becomes an operand of the IF/WHILE and an input of the subgraph,
in the source layout (a branch is planned on its own, ``converters.layout``, with
its inputs and outputs in the source layout: one TRANSPOSE at most where a value
crosses the boundary). Constants are not passed: each subgraph holds its own copy.

``If(cond)`` -> ``IF(cond, captured...)``, the two branches as subgraphs taking
the captured values.

``Loop(M, cond, v...)`` -> ``WHILE`` over the loop-carried tensors
``[i, M, cond, v..., scans..., captured...]``: the condition subgraph is
``i < M and cond``; the body runs ONNX's body with ``iter_num = i`` and
``cond_in = cond`` and gives ``i + 1, M, cond_out, v_out...``, each scan output
appended (CONCATENATION on a new leading axis) to its accumulator, and the captured
values unchanged. An accumulator starts with one row of zeros, dropped by a SLICE
after the loop: LiteRT's WHILE fails to invoke on a zero-size loop variable. An absent
``M`` is the largest int64, an
absent ``cond`` is true; a loop with neither is refused (it would never end).

Loops whose trip count is known are unrolled earlier (``passes/fold_control_flow``),
and Ifs whose condition is known are folded by constant folding: what reaches here
depends on run-time values.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx_ir as ir

from converters.layout import plan_layout
from converters.layout.graph import shape_of
from converters.layout.perm import identity
from converters.passes.subgraphs import captured_values, subgraphs_of
from converters.tflite import registry
from converters.tflite.context import LoweringContext, np_dtype
from converters.tflite.registry import lowering
from converters.tflite.schema import options
from converters.errors import ConversionError
from edgert.op_registry import default_opset, is_default_domain

CONTROL_FLOW = ("If", "Loop")


# -- the checks (asked before anything is written) ------------------------------------

def _opset(node: ir.Node) -> int:
    graph = node.graph
    return default_opset(graph.opset_imports, 13) if graph is not None else 13


def graph_reason(graph: ir.Graph, opset: int) -> Optional[str]:
    """Why a subgraph cannot be lowered (its first node TFLite cannot take, a value of
    unknown rank), or None."""
    from converters.tflite import support

    for node in graph:
        if node.op_type in CONTROL_FLOW and is_default_domain(node.domain):
            why = _REASONS[node.op_type](node, opset)
        else:
            why = support.node_reason(node, opset)
        if why:
            return f"node {node.name or node.outputs[0].name!r} ({node.op_type}): {why}"
        for v in node.outputs:
            if v is not None and shape_of(v) is None and v.uses():
                return f"value {v.name!r} has an unknown rank (run shape inference)"
    for v in list(graph.outputs) + list(graph.inputs):
        if shape_of(v) is None:
            return f"{graph.name or 'subgraph'} output or input {v.name!r} has an unknown rank"
    return None


def _scalar_bool(v: Optional[ir.Value]) -> bool:
    s = shape_of(v)
    return s is not None and all(d == 1 for d in s) and v.dtype == ir.DataType.BOOL


def if_reason(node: ir.Node, opset: Optional[int] = None) -> Optional[str]:
    opset = opset or _opset(node)
    if not _scalar_bool(node.inputs[0]):
        return "the condition must be a one-element bool tensor"
    for v in node.outputs:
        if shape_of(v) is None:
            return (f"output {v.name!r} has an unknown rank (the branches give outputs of "
                    "different ranks)")
    for name, g in subgraphs_of(node).items():
        why = graph_reason(g, opset)
        if why:
            return f"{name}: {why}"
    return None


def loop_reason(node: ir.Node, opset: Optional[int] = None) -> Optional[str]:
    opset = opset or _opset(node)
    m = node.inputs[0] if node.inputs else None
    cond = node.inputs[1] if len(node.inputs) > 1 else None
    if m is None and cond is None:
        return "a Loop with neither a trip count nor a condition never ends"
    if cond is not None and not _scalar_bool(cond):
        return "the condition must be a one-element bool tensor"
    if m is not None and shape_of(m) not in ([], [1]):
        return "the trip count must be a scalar"
    body = node.attributes["body"].value
    n_carried = len(node.inputs) - 2
    for v in list(body.outputs)[1 + n_carried:]:
        s = shape_of(v)
        if s is None or any(d is None for d in s):
            return (f"scan output {v.name!r} has no static shape per iteration "
                    "(the accumulator needs one)")
    return graph_reason(body, opset)


_REASONS = {"If": if_reason, "Loop": loop_reason}


# -- lowering a subgraph ---------------------------------------------------------------

def lower_subgraph(ctx: LoweringContext, graph: ir.Graph, name: str,
                   inputs: Sequence[ir.Value], outputs_of=None):
    """A new subgraph holding ``graph``'s nodes; its inputs are tensors for ``inputs``
    (bound to those values, source layout). ``outputs_of(bctx)`` gives its output tensor
    indices (default: ``graph``'s outputs in the source layout). Returns the builder."""
    child = ctx.sg.child(name)
    opset = ctx.opset or 13
    bctx = LoweringContext(child, plan_layout(graph, "source"), ctx.policy, ctx.quant)
    bctx.opset = opset
    for v in inputs:
        idx = child.tensor(v.name or "in", ctx.shape(v), np_dtype(v))
        child.inputs.append(idx)
        bctx.bind(v, idx, identity(len(ctx.shape(v))))
    for node in graph:
        if id(node) in bctx.consumed:
            continue
        entry = registry.find(node.op_type, node.domain, opset)
        if entry is None:
            raise ConversionError(f"tflite: no lowering for {node.op_type} in {name}")
        entry.fn(node, bctx)
    if outputs_of is None:
        child.outputs = [source_tensor(bctx, v) for v in graph.outputs]
    else:
        child.outputs = list(outputs_of(bctx))
    child.remove_dead_ops()
    ctx.notes.extend(bctx.notes)
    return child


def source_tensor(ctx: LoweringContext, v: ir.Value) -> int:
    """``v``'s tensor in the source layout (int64 constants stay int64)."""
    return ctx.tensor_of(v, identity(len(ctx.shape(v))), keep_int64=True)


def _with_opset(ctx: LoweringContext, node: ir.Node) -> None:
    if ctx.opset is None:
        ctx.opset = _opset(node)


# -- If -> IF --------------------------------------------------------------------------

@lowering("If", emits=("IF",), check=if_reason)
def lower_if(node: ir.Node, ctx: LoweringContext) -> None:
    """IF on two subgraphs, the values the branches read passed as operands."""
    _with_opset(ctx, node)
    branches = node.attributes
    then_g, else_g = branches["then_branch"].value, branches["else_branch"].value
    captured = _union(captured_values(then_g), captured_values(else_g))
    cond = _bool_scalar(ctx, node.inputs[0])
    operands = [source_tensor(ctx, v) for v in captured]
    base = node.name or node.outputs[0].name
    then_sg = lower_subgraph(ctx, then_g, f"{base}/then", captured)
    else_sg = lower_subgraph(ctx, else_g, f"{base}/else", captured)
    outs = [ctx.output(node, i, perm=identity(len(ctx.shape(v))))
            for i, v in enumerate(node.outputs)]
    ctx.emit("IF", [cond] + operands, outs,
             options("If", thenSubgraphIndex=then_sg.index, elseSubgraphIndex=else_sg.index))


def _union(*lists: Sequence[ir.Value]) -> List[ir.Value]:
    out: Dict[int, ir.Value] = {}
    for vs in lists:
        for v in vs:
            out.setdefault(id(v), v)
    return list(out.values())


def _bool_scalar(ctx: LoweringContext, v: ir.Value) -> int:
    """``v`` (a one-element bool) as a scalar tensor."""
    idx = source_tensor(ctx, v)
    if not ctx.shape(v):
        return idx
    out = ctx.tmp(f"{v.name}_scalar", [], np.bool_)
    ctx.reshape(idx, out, [])
    return out


# -- Loop -> WHILE ---------------------------------------------------------------------

_I64_MAX = np.iinfo(np.int64).max


@lowering("Loop", emits=("WHILE", "LESS", "LOGICAL_AND", "ADD", "CONCATENATION", "RESHAPE",
                         "SLICE"),
          check=loop_reason)
def lower_loop(node: ir.Node, ctx: LoweringContext) -> None:
    """WHILE over [i, M, cond, carried..., scan accumulators..., captured...]."""
    _with_opset(ctx, node)
    body = node.attributes["body"].value
    carried_in = list(node.inputs[2:])
    n_carried = len(carried_in)
    scans = list(body.outputs)[1 + n_carried:]
    captured = captured_values(body)
    base = node.name or node.outputs[0].name
    m, cond = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None

    i0 = ctx.const_tensor(f"{base}_i0", np.array(0, np.int64))
    m_t = (_int64_scalar(ctx, m) if m is not None
           else ctx.const_tensor(f"{base}_max", np.array(_I64_MAX, np.int64)))
    c_t = (_bool_scalar(ctx, cond) if cond is not None
           else ctx.const_tensor(f"{base}_true", np.array(True)))
    init = [i0, m_t, c_t] + [source_tensor(ctx, v) for v in carried_in]
    # an accumulator starts with one row of zeros, sliced off after the loop (LiteRT's
    # WHILE fails to invoke on a zero-size loop variable)
    init += [ctx.sg.const(f"{base}_scan{k}_init", np.zeros([1] + shape_of(s), np_dtype(s)))
             for k, s in enumerate(scans)]
    init += [source_tensor(ctx, v) for v in captured]
    var_specs = [(ctx.sg.shape(t), ctx.sg.tensors[t].type) for t in init]

    cond_sg = _loop_condition(ctx, f"{base}/cond", var_specs)
    body_sg = _loop_body(ctx, node, body, f"{base}/body", init, captured, scans)
    outs = []       # the Loop's outputs are the carried values then the scans: vars 3...
    for k, t in enumerate(init):
        if 3 <= k < 3 + n_carried:
            v = node.outputs[k - 3]
            outs.append(ctx.output(node, k - 3, perm=identity(len(ctx.shape(v)))))
        else:
            outs.append(_copy_tensor(ctx.sg, t, f"{base}_var{k}"))
    ctx.emit("WHILE", init, outs, options("While", condSubgraphIndex=cond_sg.index,
                                          bodySubgraphIndex=body_sg.index))
    for k, s in enumerate(scans):      # drop the accumulator's first row
        j = n_carried + k
        rank = len(shape_of(s)) + 1
        out = ctx.output(node, j, perm=identity(rank))
        begin = ctx.const_tensor("begin", np.array([1] + [0] * (rank - 1), np.int32))
        size = ctx.const_tensor("size", np.full(rank, -1, np.int32))
        ctx.emit("SLICE", [outs[3 + j], begin, size], [out], options("Slice"))


def _copy_tensor(sg, t: int, name: str) -> int:
    src = sg.tensors[t]
    idx = sg.tensor(name, sg.shape(t), np.float32)
    sg.tensors[idx].type = src.type
    return idx


def _int64_scalar(ctx: LoweringContext, v: ir.Value) -> int:
    idx = source_tensor(ctx, v)
    if np_dtype(v) != np.int64:
        raise ConversionError(f"tflite: Loop trip count {v.name!r} is not int64")
    if not ctx.shape(v):
        return idx
    out = ctx.tmp(f"{v.name}_scalar", [], np.int64)
    ctx.reshape(idx, out, [])
    return out


def _var_inputs(sg, specs) -> List[int]:
    ins = []
    for k, (shape, ttype) in enumerate(specs):
        idx = sg.tensor(f"var{k}", shape, np.float32)
        sg.tensors[idx].type = ttype
        ins.append(idx)
    sg.inputs = list(ins)
    return ins


def _loop_condition(ctx: LoweringContext, name: str, specs):
    """i < M and cond."""
    sg = ctx.sg.child(name)
    ins = _var_inputs(sg, specs)
    less = sg.tensor("i_lt_m", [], np.bool_)
    sg.op("LESS", [ins[0], ins[1]], [less])
    both = sg.tensor("go_on", [], np.bool_)
    sg.op("LOGICAL_AND", [less, ins[2]], [both])
    sg.outputs = [both]
    return sg


def _loop_body(ctx: LoweringContext, node: ir.Node, body: ir.Graph, name: str,
               init: List[int], captured: List[ir.Value], scans: List[ir.Value]):
    """ONNX's body with i, cond, carried values and captured values bound to the loop
    variables; outputs i + 1, M, cond_out, carried outputs, grown accumulators, captured."""
    n_carried = len(body.inputs) - 2
    specs = [(ctx.sg.shape(t), ctx.sg.tensors[t].type) for t in init]
    child = ctx.sg.child(name)
    ins = _var_inputs(child, specs)
    bctx = LoweringContext(child, plan_layout(body, "source"), ctx.policy, ctx.quant)
    bctx.opset = ctx.opset
    iter_v, cond_v = body.inputs[0], body.inputs[1]
    bctx.bind(iter_v, _scalar_view(child, ins[0], iter_v, bctx), identity(len(bctx.shape(iter_v))))
    bctx.bind(cond_v, _scalar_view(child, ins[2], cond_v, bctx), identity(len(bctx.shape(cond_v))))
    for k, v in enumerate(body.inputs[2:]):
        bctx.bind(v, ins[3 + k], identity(len(bctx.shape(v))))
    first_cap = 3 + n_carried + len(scans)
    for k, v in enumerate(captured):
        bctx.bind(v, ins[first_cap + k], identity(len(bctx.shape(v))))
    for n in body:
        if id(n) in bctx.consumed:
            continue
        registry.find(n.op_type, n.domain, bctx.opset).fn(n, bctx)
    one = child.const("one", np.array(1, np.int64))
    i_next = child.tensor("i_next", [], np.int64)
    child.op("ADD", [ins[0], one], [i_next], options("Add"))
    outs = [i_next, ins[1], _bool_scalar(bctx, body.outputs[0])]
    outs += [source_tensor(bctx, v) for v in list(body.outputs)[1:1 + n_carried]]
    for k, s in enumerate(scans):
        acc = ins[3 + n_carried + k]
        shape = [1] + shape_of(s)
        item = child.tensor(f"{s.name}_item", shape, np.float32)
        child.tensors[item].type = child.tensors[acc].type
        bctx.reshape(source_tensor(bctx, s), item, shape)
        grown = child.tensor(f"{s.name}_acc", [None] + shape_of(s), np.float32)
        child.tensors[grown].type = child.tensors[acc].type
        child.op("CONCATENATION", [acc, item], [grown], options("Concatenation", axis=0))
        outs.append(grown)
    outs += ins[first_cap:]
    child.outputs = outs
    child.remove_dead_ops()
    ctx.notes.extend(bctx.notes)
    return child


def _scalar_view(sg, var: int, v: ir.Value, bctx: LoweringContext) -> int:
    """The scalar loop variable ``var`` in the shape the body declares for ``v``."""
    shape = bctx.shape(v)
    if not shape:
        return var
    out = sg.tensor(f"{v.name}_view", shape, np.float32)
    sg.tensors[out].type = sg.tensors[var].type
    bctx.reshape(var, out, shape)
    return out
