"""Opset-23+ Attention and RotaryEmbedding written as MatMul / Softmax / elementwise ops.

Attention follows ONNX's reference (``onnx.reference.ops.op_attention``), which made
the node tests' expected outputs:

* 3-D inputs ``[B, S, H*D]`` are split into heads (``q_num_heads``/``kv_num_heads``);
* ``Q`` and ``K`` are each scaled by ``sqrt(scale)`` (default ``scale = 1/sqrt(D)``);
* ``past_key``/``past_value`` are concatenated in front (``present_*`` outputs);
* the additive bias is the mask (boolean: 0 / -inf; padded with -inf to the key length),
  plus the causal frontier (bottom-right: query ``i`` sees key ``j <= i + offset``, the
  offset being the past length, or ``nonpad_kv_seqlen - q_len`` per batch), the
  sliding window (opset 25) and the ``nonpad_kv_seqlen`` padding;
* grouped-query attention (fewer KV heads) multiplies each KV head with its group of
  query heads through a reshape (``[B, Hkv, rep * Sq, D]``), no repeated K/V;
* ``softcap`` is ``tanh(s / c) * c`` before the bias; rows whose bias is -inf
  everywhere give zeros (the reference's guard), decided on the bias: at conversion
  time when the bias is constant (no op at all when no row is masked), by a
  ReduceMax/Equal/Where guard when it is computed at run time;
* ``qk_matmul_output`` is, as in the reference, the (softcapped) scores for modes 0 and
  1, the biased scores for mode 2 and the probabilities for mode 3.

Whatever depends on constants only (a constant mask, the causal frontier, constant K
and V in a test) is folded at conversion time by the emitter.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import onnx_ir as ir

from converters.passes.decompose import decomposition
from converters.passes.graph_edit import Emitter

_NEG_INF = -np.inf
_LOW_PRECISION = {int(ir.DataType.FLOAT16), int(ir.DataType.BFLOAT16)}


def _static(v: Optional[ir.Value]) -> Optional[List[int]]:
    if v is None or v.shape is None or any(not isinstance(d, int) for d in v.shape):
        return None
    return list(v.shape)


def _opt(node: ir.Node, i: int) -> Optional[ir.Value]:
    return node.inputs[i] if len(node.inputs) > i else None


def _refuse_attention(node: ir.Node) -> Optional[str]:
    for i, what in ((0, "Q"), (1, "K"), (2, "V"), (3, "attn_mask"), (4, "past_key"),
                    (5, "past_value")):
        v = _opt(node, i)
        if v is not None and _static(v) is None:
            return f"{what} needs a static shape (dynamic sequence lengths are not supported)"
    rank = len(node.inputs[0].shape)
    a = node.attributes
    if rank == 3 and (a.get_int("q_num_heads", 0) < 1 or a.get_int("kv_num_heads", 0) < 1):
        return "3-D inputs need q_num_heads and kv_num_heads"
    if rank not in (3, 4):
        return f"Q has rank {rank} (3 or 4 expected)"
    if a.get_int("softmax_precision", 1) in _LOW_PRECISION:
        return "softmax_precision float16/bfloat16 (the decomposition computes in float32)"
    if (_opt(node, 4) is None) != (_opt(node, 5) is None):
        return "past_key and past_value must be given together"
    return None


class _Heads:
    """Q/K/V as [B, H, S, D] with the sizes the decomposition needs."""

    def __init__(self, e: Emitter, node: ir.Node) -> None:
        a = node.attributes
        q, k, v = node.inputs[0], node.inputs[1], node.inputs[2]
        self.rank3 = len(q.shape) == 3
        if self.rank3:
            hq, hkv = a.get_int("q_num_heads"), a.get_int("kv_num_heads")
            q, k, v = self._split(e, q, hq), self._split(e, k, hkv), self._split(e, v, hkv)
        self.q, self.k, self.v = q, k, v
        self.b, self.hq, self.sq, self.d = _static(q)
        self.hkv = _static(k)[1]
        self.dv = _static(v)[3]

    @staticmethod
    def _split(e: Emitter, x: ir.Value, heads: int) -> ir.Value:
        b, s, hidden = _static(x)
        return e.transpose(e.reshape(x, [b, s, heads, hidden // heads]), [0, 2, 1, 3])


def _float_bias(e: Emitter, mask: ir.Value, kv_len: int, like: ir.Value) -> ir.Value:
    """The mask as an additive float bias padded (with -inf) to ``kv_len`` keys."""
    shape = _static(mask)
    pad = kv_len - shape[-1]
    is_bool = mask.dtype == ir.DataType.BOOL
    if pad > 0:
        fill = np.zeros(shape[:-1] + [pad], bool) if is_bool else \
            np.full(shape[:-1] + [pad], _NEG_INF, like.dtype.numpy())
        mask = e.concat([mask, e.const(fill, fill.dtype)], -1)
    if is_bool:
        mask = e.op("Where", [mask, e.like(0.0, like), e.like(_NEG_INF, like)],
                    dtype=like.dtype)
    return mask


def _frontier(e: Emitter, node: ir.Node, sq: int, skv: int, past: int,
              like: ir.Value) -> Optional[ir.Value]:
    """The causal and sliding-window bias ([Sq, Skv], or [B, 1, Sq, Skv] with a per-batch
    offset from nonpad_kv_seqlen), or None when neither applies."""
    a = node.attributes
    causal = bool(a.get_int("is_causal", 0))
    left, right = a.get_int("left_window_size", -1), a.get_int("right_window_size", -1)
    if not causal and left < 0 and right < 0:
        return None
    nonpad = _opt(node, 6)
    i_idx = np.arange(sq, dtype=np.int64).reshape(sq, 1)
    j_idx = np.arange(skv, dtype=np.int64).reshape(1, skv)
    if past > 0 or nonpad is None:         # one offset for every batch entry
        diff = e.ints(i_idx + past - j_idx)
    else:
        off = e.op("Sub", [nonpad, e.ints(np.int64(sq))])
        diff = e.op("Sub", [e.op("Add", [e.ints(i_idx), e.reshape(off, [-1, 1, 1, 1])]),
                            e.ints(j_idx)])
    masked = []
    if causal:
        masked.append(e.op("Greater", [e.ints(np.int64(0)), diff], dtype=ir.DataType.BOOL))
    if left >= 0:
        masked.append(e.op("Greater", [diff, e.ints(np.int64(left))], dtype=ir.DataType.BOOL))
    if right >= 0:
        masked.append(e.op("Greater", [e.ints(np.int64(-right)), diff],
                           dtype=ir.DataType.BOOL))
    out = masked[0]
    for m in masked[1:]:
        out = e.op("Or", [out, m])
    return e.op("Where", [out, e.like(_NEG_INF, like), e.like(0.0, like)], dtype=like.dtype)


def _padding(e: Emitter, node: ir.Node, skv: int, like: ir.Value) -> Optional[ir.Value]:
    nonpad = _opt(node, 6)
    if nonpad is None:
        return None
    keys = e.ints(np.arange(skv, dtype=np.int64).reshape(1, 1, 1, skv))
    valid = e.op("Greater", [e.reshape(nonpad, [-1, 1, 1, 1]), keys], dtype=ir.DataType.BOOL)
    return e.op("Where", [valid, e.like(0.0, like), e.like(_NEG_INF, like)], dtype=like.dtype)


def _add(e: Emitter, a: Optional[ir.Value], b: Optional[ir.Value]) -> Optional[ir.Value]:
    if a is None or b is None:
        return a if b is None else b
    return e.op("Add", [a, b])


def _guard(e: Emitter, bias: Optional[ir.Value]) -> Tuple[Optional[ir.Value], Optional[ir.Value]]:
    """(bias safe for softmax, rows to zero [..., Sq, 1] as bool, or None)."""
    if bias is None:
        return None, None
    if bias.const_value is not None:
        b = bias.const_value.numpy()
        dead = np.isneginf(np.max(b, axis=-1, keepdims=True))
        if not dead.any():
            return bias, None
        return e.const(np.where(dead, 0, b).astype(b.dtype), b.dtype), e.const(dead, np.bool_)
    rowmax = e.reduce("ReduceMax", bias, [len(bias.shape) - 1], keepdims=1)
    dead = e.op("Equal", [rowmax, e.like(_NEG_INF, bias)], dtype=ir.DataType.BOOL)
    return e.op("Where", [dead, e.like(0.0, bias), bias], like=bias), dead


def _grouped(e: Emitter, x: ir.Value, h: _Heads, rows: int) -> ir.Value:
    """[B, Hq, rows, n] -> [B, Hkv, rep * rows, n] (query heads grouped by their KV head)."""
    if h.hq == h.hkv:
        return x
    n = _static(x)[-1]
    return e.reshape(x, [h.b, h.hkv, (h.hq // h.hkv) * rows, n])


def _ungrouped(e: Emitter, x: ir.Value, h: _Heads, rows: int) -> ir.Value:
    if h.hq == h.hkv:
        return x
    return e.reshape(x, [h.b, h.hq, rows, _static(x)[-1]])


@decomposition("Attention", "softmax(Q K^T * scale + bias) V (causal/window/padding bias, "
               "GQA, KV cache, softcap)", refuse=_refuse_attention, opsets=(23, None))
def _attention(e: Emitter, node: ir.Node) -> List[Optional[ir.Value]]:
    a = node.attributes
    h = _Heads(e, node)
    q, k, v = h.q, h.k, h.v
    past_k, past_v = _opt(node, 4), _opt(node, 5)
    past = _static(past_k)[2] if past_k is not None else 0
    if past_k is not None:
        k = e.concat([past_k, k], 2)
        v = e.concat([past_v, v], 2)
    present_k, present_v = k, v
    skv = _static(k)[2]
    scale = a.get_float("scale", 0.0) or 1.0 / np.sqrt(h.d)
    root = np.float32(np.sqrt(scale))
    qs = e.op("Mul", [q, e.like(root, q)])
    kt = e.transpose(e.op("Mul", [k, e.like(root, k)]), [0, 1, 3, 2])
    scores = _ungrouped(e, e.op("MatMul", [_grouped(e, qs, h, h.sq), kt]), h, h.sq)
    softcap = a.get_float("softcap", 0.0)
    if softcap > 0:
        capped = e.op("Tanh", [e.op("Mul", [scores, e.like(1.0 / softcap, scores)])])
        scores = e.op("Mul", [capped, e.like(softcap, scores)])
    mask = _opt(node, 3)
    bias = _float_bias(e, mask, skv, q) if mask is not None else None
    bias = _add(e, bias, _frontier(e, node, h.sq, skv, past, q))
    bias = _add(e, bias, _padding(e, node, skv, q))
    safe, dead = _guard(e, bias)
    biased = scores if safe is None else e.op("Add", [scores, safe])
    probs = e.softmax(biased, -1)
    if dead is not None:
        probs = e.op("Where", [dead, e.like(0.0, probs), probs], like=probs)
    y = _ungrouped(e, e.op("MatMul", [_grouped(e, probs, h, h.sq), v]), h, h.sq)
    if h.rank3:
        y = e.reshape(e.transpose(y, [0, 2, 1, 3]), [h.b, h.sq, h.hq * h.dv])
    outs = [y, present_k, present_v]
    if len(node.outputs) > 3:
        mode = a.get_int("qk_matmul_output_mode", 0)
        if mode == 2 and bias is not None:
            outs.append(e.op("Add", [scores, bias]))
        else:
            outs.append(probs if mode == 3 else scores)
    return [o if n.uses() or n.is_graph_output() else None for o, n in zip(outs, node.outputs)]


def _refuse_rotary(node: ir.Node) -> Optional[str]:
    x = node.inputs[0]
    shape = _static(x)
    if shape is None:
        return "the input needs a static shape"
    if len(shape) == 3 and node.attributes.get_int("num_heads", 0) < 1:
        return "a 3-D input needs num_heads"
    if len(shape) not in (3, 4):
        return f"input rank {len(shape)} (3 or 4 expected)"
    for i in (1, 2):
        if _static(node.inputs[i]) is None:
            return "cos_cache and sin_cache need static shapes"
    return None


@decomposition("RotaryEmbedding", "x1 * cos - x2 * sin, x1 * sin + x2 * cos on the rotated "
               "half (or interleaved pairs), caches gathered by position_ids",
               refuse=_refuse_rotary, opsets=(23, None))
def _rotary(e: Emitter, node: ir.Node) -> List[ir.Value]:
    x, cos, sin = node.inputs[0], node.inputs[1], node.inputs[2]
    pos = _opt(node, 3)
    a = node.attributes
    shape = _static(x)
    if len(shape) == 4:                       # [B, H, S, D] -> [B, S, H, D]
        work = e.transpose(x, [0, 2, 1, 3])
    else:
        b, s, hidden = shape
        nh = a.get_int("num_heads")
        work = e.reshape(x, [b, s, nh, hidden // nh])
    b, s, nh, d = _static(work)
    rot = a.get_int("rotary_embedding_dim", 0) or d
    half = rot // 2
    if pos is not None:                       # caches [max_pos, half] -> [B, S, half]
        cos = e.op("Gather", [cos, pos], {"axis": 0})
        sin = e.op("Gather", [sin, pos], {"axis": 0})
    cos, sin = e.unsqueeze(cos, [2]), e.unsqueeze(sin, [2])       # [B, S, 1, half]
    rotate = e.slice(work, [0], [rot], [3]) if rot < d else work
    if a.get_int("interleaved", 0):
        pairs = e.reshape(rotate, [b, s, nh, half, 2])
        x1, x2 = (e.squeeze(p, [4]) for p in e.split(pairs, 4, [1, 1]))
    else:
        x1, x2 = e.split(rotate, 3, [half, half])
    real = e.op("Sub", [e.op("Mul", [cos, x1]), e.op("Mul", [sin, x2])])
    imag = e.op("Add", [e.op("Mul", [sin, x1]), e.op("Mul", [cos, x2])])
    if a.get_int("interleaved", 0):
        rotated = e.reshape(e.concat([e.unsqueeze(real, [4]), e.unsqueeze(imag, [4])], 4),
                            [b, s, nh, rot])
    else:
        rotated = e.concat([real, imag], 3)
    if rot < d:
        rotated = e.concat([rotated, e.slice(work, [rot], [d], [3])], 3)
    if len(shape) == 4:
        return [e.transpose(rotated, [0, 2, 1, 3])]
    return [e.reshape(rotated, shape)]
