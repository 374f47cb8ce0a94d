"""Gemm / MatMul -> FULLY_CONNECTED (constant weight) or BATCH_MATMUL (two activations).

FULLY_CONNECTED takes weights as ``[out, in]``; a Gemm's or MatMul's constant B
is transposed (and scaled by alpha) once at conversion. When the input is an
NHWC flatten (``plan.col_perm``) the weight columns are permuted CHW -> HWC
instead of transposing the activations. A MatMul followed by ``Add(bias)`` (what
exporters write for a 3-D Linear) takes the bias into the FC, and a following
Relu/Relu6 becomes its fused activation. BATCH_MATMUL reads an operand stored
with its last two dims swapped through adj_x / adj_y, so ``q @ k^T`` needs no
TRANSPOSE.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from converters.layout.graph import attr, const_of, is_const, rank_of
from converters.tflite.registry import lowering
from converters.tflite.schema import options
from edgert.op_registry import is_default_domain


def check_gemm(node) -> Optional[str]:
    if rank_of(node.inputs[0]) != 2:
        return "Gemm's A must be 2-D"
    if attr(node, "transA", 0) and is_const(node.inputs[0]):
        return "a constant transposed A is not supported (fold it first)"
    return None


def _gemm_a(ctx, node) -> int:
    """A, transposed by a TRANSPOSE when transA=1."""
    a = ctx.input(node, 0)
    if not attr(node, "transA", 0):
        return a
    k, m = ctx.stored_shape(node.inputs[0], ctx.input_perm(node, 0))
    t = ctx.tmp(f"{node.outputs[0].name}_at", [m, k])
    ctx.emit("TRANSPOSE", [a, ctx.const_tensor("perm10", np.array([1, 0], np.int32))], [t])
    return t


def _bias_from(ctx, node, n_out: int) -> Tuple[Optional[np.ndarray], object]:
    """(bias [n_out], node whose output the FC now produces) for MatMul + Add(const)."""
    v = node.outputs[0]
    if v.is_graph_output() or len(v.uses()) != 1:
        return None, node
    add = next(iter(v.uses())).node
    if add.op_type != "Add" or not is_default_domain(add.domain):
        return None, node
    other = add.inputs[1] if add.inputs[0] is v else add.inputs[0]
    c = const_of(other)
    if c is None or c.size != n_out or (c.ndim and c.shape[-1] != n_out):
        return None, node
    if c.ndim > rank_of(v):
        return None, node
    ctx.consumed.add(id(add))
    return c.reshape(n_out).astype(np.float32), add


def emit_fc(ctx, node, a_idx: int, weight: np.ndarray, bias: Optional[np.ndarray],
            tail_node, keep_dims: bool) -> None:
    """FULLY_CONNECTED (weight ``[out, in]``) producing ``tail_node``'s output, activation fused."""
    name = node.name or node.outputs[0].name
    w_idx, facts = ctx.weight(f"{name}_weight", weight, "fc")
    b_idx = -1
    if bias is not None:
        b_idx, _ = ctx.weight(f"{name}_bias", bias.astype(np.float32), "bias")
    act, out_value = ctx.fuse_activation(tail_node)
    out = ctx.output(tail_node, value=out_value)
    hybrid = bool(facts)
    ctx.emit("FULLY_CONNECTED", [a_idx, w_idx, b_idx], [out],
             options("FullyConnected", fusedActivationFunction=act, keepNumDims=keep_dims,
                     asymmetricQuantizeInputs=hybrid), **facts)


@lowering("Gemm", emits=("FULLY_CONNECTED", "BATCH_MATMUL", "ADD", "MUL"), check=check_gemm)
def lower_gemm(node, ctx) -> None:
    """Y = alpha * A @ B' + beta * C as FULLY_CONNECTED (constant B) or BATCH_MATMUL."""
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    trans_b = bool(attr(node, "transB", 0))
    a = _gemm_a(ctx, node)
    b_val = node.inputs[1]
    c_val = node.inputs[2] if len(node.inputs) > 2 else None
    c = ctx.const(c_val) if c_val is not None else None
    n_out = ctx.shape(node.outputs[0])[1]
    if is_const(b_val):
        w = ctx.const(b_val).astype(np.float32)
        w = (w if trans_b else w.T) * alpha
        col = None if attr(node, "transA", 0) else ctx.plan.col_perm(node.inputs[0])
        if col is not None:
            w = w[:, col]
        bias = None
        if c is not None and c.size in (1, n_out) and (c.ndim < 2 or c.shape[0] == 1):
            bias = np.broadcast_to(c.reshape(-1) * beta, (n_out,)).astype(np.float32)
        if c_val is None or bias is not None:
            emit_fc(ctx, node, a, np.ascontiguousarray(w), bias, node, keep_dims=False)
            return
        mid = ctx.tmp(f"{node.outputs[0].name}_mm", ctx.stored_shape(node.outputs[0]))
        w_idx, facts = ctx.weight(f"{node.name}_weight", np.ascontiguousarray(w), "fc")
        ctx.emit("FULLY_CONNECTED", [a, w_idx, -1], [mid], options("FullyConnected"), **facts)
    else:
        mid = ctx.tmp(f"{node.outputs[0].name}_mm", ctx.stored_shape(node.outputs[0]))
        ctx.emit("BATCH_MATMUL", [a, ctx.input(node, 1)], [mid],
                 options("BatchMatMul", adjY=trans_b))
        if alpha != 1.0:
            scaled = ctx.tmp(f"{node.outputs[0].name}_scaled", ctx.stored_shape(node.outputs[0]))
            ctx.emit("MUL", [mid, ctx.const_tensor("alpha", np.array(alpha, np.float32))],
                     [scaled], options("Mul"))
            mid = scaled
        if c_val is None:
            ctx.bind(node.outputs[0], mid)
            return
    if beta == 1.0:
        c_idx = ctx.tensor_of(c_val)
    elif c is not None:
        c_idx = ctx.const_tensor("gemm_c", (c * beta).astype(np.float32))
    else:                                          # a run-time C: scaled by a MUL
        c_idx = ctx.tmp(f"{node.outputs[0].name}_beta_c", ctx.sg.shape(ctx.tensor_of(c_val)))
        ctx.emit("MUL", [ctx.tensor_of(c_val), ctx.const_tensor(
            "beta", np.array(beta, np.float32))], [c_idx], options("Mul"))
    act, out_value = ctx.fuse_activation(node)
    out = ctx.output(node, value=out_value)
    ctx.emit("ADD", [mid, c_idx], [out], options("Add", fusedActivationFunction=act))


def check_matmul(node) -> Optional[str]:
    ra, rb = rank_of(node.inputs[0]), rank_of(node.inputs[1])
    if ra is None or rb is None:
        return "operand ranks are unknown"
    if ra < 2 or rb < 2:
        return "1-D MatMul operands are not supported"
    if is_const(node.inputs[0]):
        return "a constant left operand is not supported"
    return None


@lowering("MatMul", emits=("FULLY_CONNECTED", "BATCH_MATMUL"), check=check_matmul)
def lower_matmul(node, ctx) -> None:
    """FULLY_CONNECTED (keep_num_dims) for a constant 2-D B, else BATCH_MATMUL."""
    b_val = node.inputs[1]
    a = ctx.input(node, 0)
    if is_const(b_val) and rank_of(b_val) == 2:
        w = np.ascontiguousarray(ctx.const(b_val).astype(np.float32).T)
        col = ctx.plan.col_perm(node.inputs[0])
        if col is not None:
            w = np.ascontiguousarray(w[:, col])
        bias, tail = _bias_from(ctx, node, w.shape[0])
        emit_fc(ctx, node, a, w, bias, tail, keep_dims=rank_of(node.inputs[0]) > 2)
        return
    adj_x = _swapped(ctx.input_perm(node, 0))
    if is_const(b_val):
        b = ctx.const_tensor(f"{node.name}_b", ctx.const(b_val).astype(np.float32))
        adj_y = False
    else:
        b = ctx.input(node, 1)
        adj_y = _swapped(ctx.input_perm(node, 1))
    out = ctx.output(node)
    ctx.emit("BATCH_MATMUL", [a, b], [out], options("BatchMatMul", adjX=adj_x, adjY=adj_y))


def _swapped(perm) -> bool:
    """Stored with the last two dims swapped (read through adj_x / adj_y)."""
    r = len(perm)
    return r >= 2 and tuple(perm[-2:]) == (r - 1, r - 2) and tuple(perm[:-2]) == tuple(range(r - 2))
