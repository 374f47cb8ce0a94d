"""LSTM, GRU and simple RNN, unrolled over time into FULLY_CONNECTED and elementwise ops.

Why unrolled rather than UNIDIRECTIONAL_SEQUENCE_LSTM: that op keeps its h/c state
in *variable* tensors that persist across ``invoke()`` calls, so a stateless ONNX
LSTM would start its second run from the first run's final state unless the app
resets variables; and TFLite has no GRU builtin at all. Unrolling is exact, runs
on any interpreter, and most of it is delegated to XNNPACK.

Per direction: one FULLY_CONNECTED projects every time step's input at once
(``[T*B, I] x W^T + (Wb + Rb)``) and STRIDED_SLICE takes each step's share; each
step then adds the recurrent FC of the previous h, SPLITs the gates and applies
them. Every op is one XNNPACK delegates (no UNPACK/PACK/SPLIT_V; concatenations
in rounds of at most 5), so the unrolled net runs as one delegate partition.
The sequence length must be static; only outputs that are read are built.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from converters.layout.graph import attr, const_of, is_const, shape_of
from converters.tflite.registry import lowering
from converters.tflite.schema import options

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def check_rnn(node) -> Optional[str]:
    acts = attr(node, "activations", None)
    n_dir = 2 if attr(node, "direction", "forward") == "bidirectional" else 1
    if acts and [a.lower() for a in acts] != [a.lower() for a in _DEFAULT_ACTS[node.op_type]] * n_dir:
        return f"activations {acts} (only the defaults are supported)"
    if attr(node, "clip", None) is not None:
        return "clip is not supported"
    if node.op_type == "LSTM" and attr(node, "input_forget", 0):
        return "input_forget=1 is not supported"
    for i, what in ((1, "W"), (2, "R"), (3, "B")):
        if len(node.inputs) > i and node.inputs[i] is not None and not is_const(node.inputs[i]):
            return f"{what} must be constant"
    x = shape_of(node.inputs[0])
    if x is None or any(d is None for d in x):
        return "the input shape (sequence length and batch) must be static"
    if len(node.inputs) > 4 and node.inputs[4] is not None:
        lens = const_of(node.inputs[4])
        steps = x[0] if int(attr(node, "layout", 0)) == 0 else x[1]
        if lens is None or np.any(lens != steps):
            return ("sequence_lens shorter than the sequence is not supported (pad sequences "
                    "to the full length)")
    if node.op_type == "LSTM" and len(node.inputs) > 7 and node.inputs[7] is not None \
            and not is_const(node.inputs[7]):
        return "P must be constant"
    return None


MAX_CONCAT = 5      # XNNPACK delegates CONCATENATION of at most 5 inputs


def concat_tree(ctx, parts: List[int], axis: int, name: str) -> int:
    """Concatenate many tensors along ``axis`` in rounds of at most ``MAX_CONCAT``."""
    level = 0
    while len(parts) > 1:
        nxt = []
        for k in range(0, len(parts), MAX_CONCAT):
            group = parts[k:k + MAX_CONCAT]
            if len(group) == 1:
                nxt.append(group[0])
                continue
            shapes = [ctx.sg.shape(p) for p in group]
            shape = list(shapes[0])
            shape[axis] = sum(s[axis] for s in shapes)
            out = ctx.tmp(f"{name}_cat{level}_{k}", shape)
            ctx.emit("CONCATENATION", group, [out], options("Concatenation", axis=axis))
            nxt.append(out)
        parts, level = nxt, level + 1
    return parts[0]


class _Rnn:
    """Shared bookkeeping: shapes, per-direction weights, state inputs, outputs."""

    def __init__(self, node, ctx) -> None:
        self.node, self.ctx = node, ctx
        self.layout = int(attr(node, "layout", 0))
        x = ctx.shape(node.inputs[0])
        self.T, self.B = (x[0], x[1]) if self.layout == 0 else (x[1], x[0])
        self.H = int(attr(node, "hidden_size"))
        self.dirs = {"forward": [False], "reverse": [True],
                     "bidirectional": [False, True]}[attr(node, "direction", "forward")]
        self.name = node.name or node.outputs[0].name

    def shape(self, width: int) -> List[int]:
        """A step's tensor shape: ``[1, B, width]`` (layout 0) or ``[B, 1, width]`` (layout 1),
        so steps concatenate into Y with no RESHAPE."""
        return [1, self.B, width] if self.layout == 0 else [self.B, 1, width]

    def proj_steps(self, d: int, w: np.ndarray, bias: np.ndarray) -> List[int]:
        """Input projection of every step: a list (time order) of step-shaped tensors."""
        ctx, T, B = self.ctx, self.T, self.B
        g = w.shape[0]
        x = ctx.input(self.node, 0)
        flat = ctx.tmp(f"{self.name}_x2d", [T * B, w.shape[1]])
        ctx.reshape(x, flat, [T * B, w.shape[1]])
        w_t, facts = ctx.weight(f"{self.name}_W{d}", w, "fc")
        b_t, _ = ctx.weight(f"{self.name}_Wb{d}", bias, "bias")
        proj = ctx.tmp(f"{self.name}_xproj{d}", [T * B, g])
        ctx.emit("FULLY_CONNECTED", [flat, w_t, b_t], [proj], options("FullyConnected"), **facts)
        seq_shape = [T, B, g] if self.layout == 0 else [B, T, g]
        seq = ctx.tmp(f"{self.name}_xseq{d}", seq_shape)
        ctx.reshape(proj, seq, seq_shape)
        steps = []
        for t in range(T):
            begin = [t, 0, 0] if self.layout == 0 else [0, t, 0]
            end = [t + 1, B, g] if self.layout == 0 else [B, t + 1, g]
            step = ctx.tmp(f"{self.name}_x{d}_{t}", self.shape(g))
            ctx.emit("STRIDED_SLICE", [seq, ctx.const_tensor("begin", np.array(begin, np.int32)),
                                       ctx.const_tensor("end", np.array(end, np.int32)),
                                       ctx.const_tensor("ones3", np.ones(3, np.int32))],
                     [step], options("StridedSlice"))
            steps.append(step)
        return steps

    def initial(self, i: int, d: int) -> int:
        """Initial state ``d`` from optional input ``i`` ([D, B, H], or [B, D, H] if layout=1)."""
        ctx, node, H = self.ctx, self.node, self.H
        v = node.inputs[i] if len(node.inputs) > i else None
        c = const_of(v) if v is not None else None
        if v is None or (c is not None and not np.any(c)):
            return ctx.const_tensor(f"{self.name}_zeros", np.zeros(self.shape(H), np.float32))
        if c is not None:
            part = c[d] if self.layout == 0 else c[:, d]
            return ctx.const_tensor(f"{self.name}_init{i}_{d}",
                                    part.astype(np.float32).reshape(self.shape(H)))
        src = ctx.input(node, i)
        begin = [d, 0, 0] if self.layout == 0 else [0, d, 0]
        out = ctx.tmp(f"{self.name}_init{i}_{d}", self.shape(H))
        ctx.emit("SLICE", [src, ctx.const_tensor("begin", np.array(begin, np.int32)),
                           ctx.const_tensor("size", np.array(self.shape(H), np.int32))], [out])
        return out

    def op(self, builtin: str, ins, width: int, tag: str, opts=None) -> int:
        out = self.ctx.tmp(f"{self.name}_{tag}", self.shape(width))
        self.ctx.emit(builtin, list(ins), [out], opts)
        return out

    def fc(self, h: int, weight: int, bias: int, width: int, tag: str, facts) -> int:
        """The recurrent FULLY_CONNECTED of a step (FC flattens ``h`` to ``[B, H]``)."""
        ctx = self.ctx
        out = ctx.tmp(f"{self.name}_{tag}", [self.B, width])
        ctx.emit("FULLY_CONNECTED", [h, weight, bias], [out], options("FullyConnected"), **facts)
        if self.layout == 0:
            return out                   # [B, w] broadcasts against [1, B, w]
        shaped = ctx.tmp(f"{self.name}_{tag}_3d", self.shape(width))
        ctx.reshape(out, shaped, self.shape(width))
        return shaped

    def split(self, x: int, n: int, width: int, tag: str) -> List[int]:
        """``n`` equal parts of the last axis (SPLIT; XNNPACK takes up to 4 parts)."""
        ctx = self.ctx
        shape = ctx.sg.shape(x)[:-1] + [width]
        outs = [ctx.tmp(f"{self.name}_{tag}_{k}", shape) for k in range(n)]
        axis = ctx.const_tensor("last_axis", np.array(len(shape) - 1, np.int32))
        ctx.emit("SPLIT", [axis, x], outs, options("Split", numSplits=n))
        return outs

    def finish(self, hs: List[List[int]], finals: List[List[int]]) -> None:
        """Build Y from per-direction h sequences and Y_h / Y_c from final states."""
        node, ctx, T, B, H = self.node, self.ctx, self.T, self.B, self.H
        time_axis = 0 if self.layout == 0 else 1
        y = node.outputs[0] if node.outputs else None
        if y is not None and (y.uses() or y.is_graph_output()):
            parts = [concat_tree(ctx, seq, time_axis, f"{self.name}_y{d}")
                     for d, seq in enumerate(hs)]
            self._stack(parts, [T, 1, B, H] if self.layout == 0 else [B, T, 1, H],
                        1 if self.layout == 0 else 2, y)
        for k, states in enumerate(finals, start=1):
            v = node.outputs[k] if len(node.outputs) > k else None
            if v is None or not (v.uses() or v.is_graph_output()):
                continue
            self._stack(states, self.shape(H), time_axis, v)

    def _stack(self, parts: List[int], one_shape: List[int], axis: int, value) -> None:
        """Reshape each direction's part to ``one_shape`` and concatenate them along ``axis``."""
        ctx = self.ctx
        if len(parts) == 1:
            if ctx.sg.shape(parts[0]) == list(one_shape):
                ctx.bind(value, parts[0])
            else:
                ctx.reshape(parts[0], ctx.output(self.node, value=value), one_shape)
            return
        shaped = []
        for k, p in enumerate(parts):
            if ctx.sg.shape(p) != list(one_shape):
                t = ctx.tmp(f"{value.name}_{k}", one_shape)
                ctx.reshape(p, t, one_shape)
                p = t
            shaped.append(p)
        ctx.emit("CONCATENATION", shaped, [ctx.output(self.node, value=value)],
                 options("Concatenation", axis=axis))


@lowering("LSTM", emits=("FULLY_CONNECTED", "STRIDED_SLICE", "RESHAPE", "CONCATENATION", "SPLIT",
                         "LOGISTIC", "TANH", "MUL", "ADD"), opsets=(7, None), check=check_rnn)
def lower_lstm(node, ctx) -> None:
    """LSTM unrolled: i, f, o = sigmoid(...), g = tanh(...), c = f*c + i*g, h = o*tanh(c)."""
    r = _Rnn(node, ctx)
    H = r.H
    W, R = ctx.const(node.inputs[1]), ctx.const(node.inputs[2])
    Bv = ctx.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None \
        else np.zeros((W.shape[0], 8 * H), np.float32)
    order = np.concatenate([np.arange(0, H), np.arange(2 * H, 3 * H), np.arange(H, 2 * H),
                            np.arange(3 * H, 4 * H)])                  # i,o,f,c -> i,f,o,c
    hs, last_h, last_c = [], [], []
    for d, backward in enumerate(r.dirs):
        w = W[d][order].astype(np.float32)
        b = (Bv[d][:4 * H] + Bv[d][4 * H:])[order].astype(np.float32)
        xs = r.proj_steps(d, w, b)
        rw, facts = ctx.weight(f"{r.name}_R{d}", R[d][order].astype(np.float32), "fc")
        h, c = r.initial(5, d), r.initial(6, d)
        peep = _peepholes(ctx, node, r, d)
        seq = [None] * r.T
        for t in (reversed(range(r.T)) if backward else range(r.T)):
            tag = f"d{d}t{t}"
            rec = r.fc(h, rw, -1, 4 * H, f"{tag}_rec", facts)
            gates = r.op("ADD", [xs[t], rec], 4 * H, f"{tag}_gates", options("Add"))
            i_in, f_in, o_in, g_in = r.split(gates, 4, H, f"{tag}_ifog")
            if peep is not None:        # i, f see c(t-1); o sees c(t)
                i_in = r.op("ADD", [i_in, r.op("MUL", [peep[0], c], H, f"{tag}_pic",
                                               options("Mul"))], H, f"{tag}_ip", options("Add"))
                f_in = r.op("ADD", [f_in, r.op("MUL", [peep[2], c], H, f"{tag}_pfc",
                                               options("Mul"))], H, f"{tag}_fp", options("Add"))
            i_g = r.op("LOGISTIC", [i_in], H, f"{tag}_i")
            f_g = r.op("LOGISTIC", [f_in], H, f"{tag}_f")
            g = r.op("TANH", [g_in], H, f"{tag}_g")
            fc_ = r.op("MUL", [f_g, c], H, f"{tag}_fc", options("Mul"))
            ig = r.op("MUL", [i_g, g], H, f"{tag}_ig", options("Mul"))
            c = r.op("ADD", [fc_, ig], H, f"{tag}_c", options("Add"))
            if peep is not None:
                o_in = r.op("ADD", [o_in, r.op("MUL", [peep[1], c], H, f"{tag}_poc",
                                               options("Mul"))], H, f"{tag}_op", options("Add"))
            o_g = r.op("LOGISTIC", [o_in], H, f"{tag}_o")
            tc = r.op("TANH", [c], H, f"{tag}_tc")
            h = r.op("MUL", [o_g, tc], H, f"{tag}_h", options("Mul"))
            seq[t] = h
        hs.append(seq)
        last_h.append(h)
        last_c.append(c)
    r.finish(hs, [last_h, last_c])


def _peepholes(ctx, node, r: _Rnn, d: int):
    """The direction's peephole weights (p_i, p_o, p_f) as constants, or None when absent or
    all zero."""
    p = const_of(node.inputs[7]) if len(node.inputs) > 7 and node.inputs[7] is not None \
        else None
    if p is None or not np.any(p[d]):
        return None
    H = r.H
    return [ctx.const_tensor(f"{r.name}_P{d}_{k}", p[d][k * H:(k + 1) * H].astype(np.float32))
            for k in range(3)]


@lowering("RNN", emits=("FULLY_CONNECTED", "STRIDED_SLICE", "RESHAPE", "CONCATENATION", "TANH",
                        "ADD"), opsets=(7, None), check=check_rnn)
def lower_rnn(node, ctx) -> None:
    """Simple RNN unrolled: h = tanh(x W^T + h R^T + Wb + Rb)."""
    r = _Rnn(node, ctx)
    H = r.H
    W, R = ctx.const(node.inputs[1]), ctx.const(node.inputs[2])
    Bv = ctx.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None \
        else np.zeros((W.shape[0], 2 * H), np.float32)
    hs, last_h = [], []
    for d, backward in enumerate(r.dirs):
        xs = r.proj_steps(d, W[d].astype(np.float32),
                          (Bv[d][:H] + Bv[d][H:]).astype(np.float32))
        rw, facts = ctx.weight(f"{r.name}_R{d}", R[d].astype(np.float32), "fc")
        h = r.initial(5, d)
        seq = [None] * r.T
        for t in (reversed(range(r.T)) if backward else range(r.T)):
            tag = f"d{d}t{t}"
            rec = r.fc(h, rw, -1, H, f"{tag}_rec", facts)
            h = r.op("TANH", [r.op("ADD", [xs[t], rec], H, f"{tag}_in", options("Add"))], H,
                     f"{tag}_h")
            seq[t] = h
        hs.append(seq)
        last_h.append(h)
    r.finish(hs, [last_h])


@lowering("GRU", emits=("FULLY_CONNECTED", "STRIDED_SLICE", "RESHAPE", "CONCATENATION", "SPLIT",
                        "LOGISTIC", "TANH", "MUL", "ADD", "SUB"), opsets=(7, None), check=check_rnn)
def lower_gru(node, ctx) -> None:
    """GRU unrolled: z, r = sigmoid(...), n = tanh(...), h = n + z * (h - n)."""
    r = _Rnn(node, ctx)
    H = r.H
    lbr = int(attr(node, "linear_before_reset", 0))
    W, R = ctx.const(node.inputs[1]), ctx.const(node.inputs[2])
    Bv = ctx.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None \
        else np.zeros((W.shape[0], 6 * H), np.float32)
    hs, last_h = [], []
    for d, backward in enumerate(r.dirs):
        wb, rb = Bv[d][:3 * H].astype(np.float32), Bv[d][3 * H:].astype(np.float32)
        xb = np.concatenate([wb[:2 * H] + rb[:2 * H], wb[2 * H:]])
        xs = r.proj_steps(d, W[d].astype(np.float32), xb)
        Rd = R[d].astype(np.float32)
        if lbr:
            rw, facts = ctx.weight(f"{r.name}_R{d}", Rd, "fc")
            rbias = ctx.const_tensor(f"{r.name}_Rb{d}", np.concatenate(
                [np.zeros(2 * H, np.float32), rb[2 * H:]]))
        else:
            rzr, facts = ctx.weight(f"{r.name}_Rzr{d}", Rd[:2 * H], "fc")
            rh, _ = ctx.weight(f"{r.name}_Rh{d}", Rd[2 * H:], "fc")
            rhb = ctx.const_tensor(f"{r.name}_Rhb{d}", rb[2 * H:])
        h = r.initial(5, d)
        seq = [None] * r.T
        for t in (reversed(range(r.T)) if backward else range(r.T)):
            tag = f"d{d}t{t}"
            x_z, x_r, x_n = r.split(xs[t], 3, H, f"{tag}_x")
            if lbr:
                rec = r.fc(h, rw, rbias, 3 * H, f"{tag}_rec", facts)
                h_z, h_r, h_n = r.split(rec, 3, H, f"{tag}_h")
            else:
                h_zr = r.fc(h, rzr, -1, 2 * H, f"{tag}_hzr", facts)
                h_z, h_r = r.split(h_zr, 2, H, f"{tag}_h")
            z = r.op("LOGISTIC", [r.op("ADD", [x_z, h_z], H, f"{tag}_z_in", options("Add"))],
                     H, f"{tag}_z")
            rg = r.op("LOGISTIC", [r.op("ADD", [x_r, h_r], H, f"{tag}_r_in", options("Add"))],
                      H, f"{tag}_r")
            if lbr:
                gated = r.op("MUL", [rg, h_n], H, f"{tag}_rhn", options("Mul"))
            else:
                rh_in = r.op("MUL", [rg, h], H, f"{tag}_rh", options("Mul"))
                gated = r.fc(rh_in, rh, rhb, H, f"{tag}_rhn", facts)
            n = r.op("TANH", [r.op("ADD", [x_n, gated], H, f"{tag}_n_in", options("Add"))],
                     H, f"{tag}_n")
            diff = r.op("SUB", [h, n], H, f"{tag}_hn", options("Sub"))
            zd = r.op("MUL", [z, diff], H, f"{tag}_zd", options("Mul"))
            h = r.op("ADD", [n, zd], H, f"{tag}_h", options("Add"))
            seq[t] = h
        hs.append(seq)
        last_h.append(h)
    r.finish(hs, [last_h])
