"""Full int8 for TFLite: quantize a lowered float subgraph with a quantization table.

A rewrite of the built subgraph rather than a change to every lowering: the
lowerings emit the float graph (tensor names are the ONNX value names), then
this pass, op by op in graph order,

1. gives each activation tensor its table parameters (by name; a same-scale op's
   output takes its input's, a SOFTMAX/LOGISTIC/TANH output the fixed ones its
   kernel demands), shifting uint8 entries to int8;
2. makes an op int8 when LiteRT has an int8 kernel for it (``int8_ops.py``),
   every float activation it reads and writes has parameters, and the table does
   not keep it in float; weighted ops get per-channel int8 weights with the
   table's scales (found through the ONNX node that produced the op's output)
   and int32 biases with scale s_in * s_w;
3. inserts QUANTIZE where a float tensor meets an int8 op, DEQUANTIZE where an
   int8 tensor meets a float op, QUANTIZE (int8 -> int8) where a concatenation
   input has other parameters, and at the graph boundary according to
   ``io_dtype`` ("float": float I/O with QUANTIZE/DEQUANTIZE inside; "int8": the
   model's inputs and outputs are int8 tensors);
4. drops the float weights no op reads any more.

The returned report lists the ops left in float and why.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from converters.tflite import int8_ops
from converters.tflite.builder import OpRecord, SubgraphBuilder
from converters.tflite.quant import quant_params, quantize_bias
from converters.errors import ConversionError
from edgert.quantization import quantize

F32, I32, I8 = 0, 2, 9
FUSED_INTO_LAYER = ("Relu", "Clip")     # activations the writer fuses into their layer
MOVES_FLOAT = "moves a float tensor"    # a same-scale op on a float input stays float
QP = Tuple[float, int]          # (scale, zero point) in int8 terms


@dataclass
class Int8Report:
    int8_ops: int = 0
    float_ops: List[Tuple[str, str, str]] = field(default_factory=list)  # (op, output, why)
    quantize_ops: int = 0
    dequantize_ops: int = 0
    requantize_ops: int = 0
    float_moves: int = 0        # same-scale ops left on float tensors (layout, padding)

    def to_dict(self) -> Dict[str, Any]:
        return {"int8_ops": self.int8_ops, "quantize_ops": self.quantize_ops,
                "dequantize_ops": self.dequantize_ops, "requantize_ops": self.requantize_ops,
                "float_moves": self.float_moves,
                "float_ops": [{"op": o, "output": t, "reason": r} for o, t, r in self.float_ops]}

    def notes(self) -> List[str]:
        out = [f"full int8: {self.int8_ops} int8 op(s), {self.quantize_ops} QUANTIZE, "
               f"{self.dequantize_ops} DEQUANTIZE, {self.requantize_ops} requantize"
               + (f"; {self.float_moves} layout/padding op(s) on float tensors"
                  if self.float_moves else "")]
        if self.float_ops:
            out.append(f"{len(self.float_ops)} op(s) kept in float: " + "; ".join(
                f"{o} -> {t} ({r})" for o, t, r in self.float_ops[:12])
                + (" ..." if len(self.float_ops) > 12 else ""))
        return out


class _Onnx:
    """What the pass needs from the ONNX graph: producers by value name, the table."""

    def __init__(self, model, table) -> None:
        self.table = table
        self.producer: Dict[str, Any] = {}
        for node in model.graph:
            for o in node.outputs:
                if o is not None:
                    self.producer[o.name] = node

    def layer_node(self, out_name: str):
        """The Conv/Gemm/MatMul/ConvTranspose whose (fused) result is ``out_name``."""
        node = self.producer.get(out_name)
        for _ in range(3):
            if node is None or node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                return node
            nxt = None
            for v in node.inputs:
                p = self.producer.get(v.name) if v is not None else None
                if p is not None and p.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul",
                                                   "Relu", "Clip", "Add"):
                    nxt = p
                    break
            node = nxt
        return None

    def float_override(self, out_name: str):
        """The table's float override of the ONNX node(s) behind a TFLite op's output:
        its producer, and for a fused op (a Conv whose output is its Relu/Clip's) the
        layer node too, so "keep conv1 in float" holds with its activation fused in."""
        nodes = [self.producer.get(out_name)]
        if nodes[0] is not None and nodes[0].op_type in FUSED_INTO_LAYER:
            nodes.append(self.layer_node(out_name))
        for node in nodes:
            if node is None:
                continue
            hit = self.table.float_override(node.name or "", node.op_type,
                                            [o.name for o in node.outputs if o is not None])
            if hit is not None:
                return hit
        return None

    def activation(self, name: str) -> Optional[QP]:
        from quant_tables.qparams import to_signed

        a = self.table.activations.get(name)
        if a is None or a.dtype not in ("int8", "uint8"):
            return None
        zp, _, _ = to_signed(a.zero_point, *a.qrange, a.dtype)
        return float(a.scale), int(zp)


def _qparams(qp: QP):
    return quant_params([qp[0]], [qp[1]])


NORM_INPUT = ("its output is normalized (LayerNorm, GroupNorm...): int8 error there is "
              "divided by each row's spread, so the residual stream stays float")


def _own_range(arr: np.ndarray) -> QP:
    """A float constant operand's parameters: per tensor, over its own range."""
    from quant_tables.qparams import qparams_from_range

    return qparams_from_range(float(arr.min()), float(arr.max()), "int8")


def _normalized_tensors(ops: List[OpRecord]) -> set:
    """Tensors x a normalization reads as SUB(x, MEAN(x)) (how LayerNorm, GroupNorm and
    InstanceNorm are written: ``ops/norm.py``)."""
    means = {rec.outputs[0]: rec.inputs[0] for rec in ops
             if rec.builtin == "MEAN" and rec.outputs and rec.inputs}
    found = set()
    for rec in ops:
        if rec.builtin == "SUB" and len(rec.inputs) == 2:
            x, m = rec.inputs
            src = means.get(m)
            while src is not None and src != x and src in means:   # MEAN of a MEAN (groups)
                src = means[src]
            if src == x:
                found.add(x)
    return found


class _Rewriter:
    def __init__(self, sg: SubgraphBuilder, onnx: _Onnx, io_dtype: str) -> None:
        self.sg, self.onnx, self.io_dtype = sg, onnx, io_dtype
        self.qp: Dict[int, QP] = {}
        self.home: Dict[int, str] = {}          # tensor -> "int8" | "float"
        self.q_copy: Dict[Tuple[int, QP], int] = {}
        self.f_copy: Dict[int, int] = {}
        self.new_ops: List[OpRecord] = []
        self.report = Int8Report()
        self.readers: Dict[int, List[OpRecord]] = {}
        for rec in sg.ops:
            for t in rec.inputs:
                if t >= 0:
                    self.readers.setdefault(t, []).append(rec)
        self.norm_inputs = _normalized_tensors(sg.ops)

    # -- tensors -------------------------------------------------------------------
    def is_act(self, t: int) -> bool:
        """A float activation of the source graph (possibly already made int8 here)."""
        return t >= 0 and not self.sg.is_const(t) and (
            self.sg.tensors[t].type == F32 or self.home.get(t) == "int8")

    def is_float_const(self, t: int) -> bool:
        return t >= 0 and self.sg.is_const(t) and self.sg.tensors[t].type == F32

    def params_of(self, t: int) -> Optional[QP]:
        if t not in self.qp:
            p = self.onnx.activation(self.sg.tensors[t].name)
            if p is not None:
                self.qp[t] = p
        return self.qp.get(t)

    def const_array(self, t: int) -> np.ndarray:
        ten = self.sg.tensors[t]
        data = self.sg.buffer_data[ten.buffer] or b""
        return np.frombuffer(data, dtype=np.float32).reshape(ten.shape)

    def _clone(self, t: int, suffix: str, dtype, quant) -> int:
        ten = self.sg.tensors[t]
        shape = [None if ten.shapeSignature is not None and ten.shapeSignature[k] == -1 else d
                 for k, d in enumerate(ten.shape)]
        return self.sg.tensor(f"{ten.name}{suffix}", shape, dtype, quant=quant)

    def quantized(self, t: int, qp: QP) -> int:
        """``t`` as int8 with ``qp``: itself, or a QUANTIZE'd copy (cached)."""
        if self.home.get(t) == "int8" and self.qp.get(t) == qp:
            return t
        key = (t, qp)
        if key not in self.q_copy:
            src = t
            if self.home.get(t) == "int8":
                self.report.requantize_ops += 1
            else:
                self.report.quantize_ops += 1
            out = self._clone(t, "_int8" if self.home.get(t) != "int8" else "_requant", np.int8,
                              _qparams(qp))
            self.new_ops.append(OpRecord("QUANTIZE", [src], [out]))
            self.q_copy[key] = out
        return self.q_copy[key]

    def dequantized(self, t: int) -> int:
        if self.home.get(t) != "int8":
            return t
        if t not in self.f_copy:
            out = self._clone(t, "_float", np.float32, None)
            self.new_ops.append(OpRecord("DEQUANTIZE", [t], [out]))
            self.report.dequantize_ops += 1
            self.f_copy[t] = out
        return self.f_copy[t]

    def make_int8(self, t: int, qp: QP) -> None:
        ten = self.sg.tensors[t]
        ten.type = I8
        ten.quantization = _qparams(qp)
        self.qp[t] = qp
        self.home[t] = "int8"

    # -- ops ---------------------------------------------------------------------------
    def plan(self, rec: OpRecord) -> Tuple[Optional[str], Dict[int, QP], str]:
        """(kind or None, output params, reason when float)."""
        k = int8_ops.kind(rec.builtin)
        outs = [t for t in rec.outputs if self.is_act(t)]
        name = self.sg.tensors[rec.outputs[0]].name if rec.outputs else "?"
        if k is None:
            return None, {}, "no int8 kernel"
        if self.onnx.float_override(name) is not None:
            return None, {}, "kept in float by the table"
        acts = [t for t in self._act_inputs(rec, k) if self.is_act(t)]
        if not acts:
            return None, {}, "no activation input"
        if k == "same" and self.home.get(acts[0]) != "int8" and \
                not any(self.feeds_int8(t) for t in outs):
            # it only moves or selects values of a float tensor no int8 op reads after it
            # (a layout RESHAPE or explicit PAD in front of a layer the table keeps float):
            # in int8 it would cost a QUANTIZE here and a DEQUANTIZE after it. Its output
            # keeps the input's parameters all the same.
            qp = self.params_of(acts[0])
            for t in outs:
                if qp is not None and t not in self.qp:
                    self.qp[t] = qp
            return None, {}, MOVES_FLOAT
        missing = [self.sg.tensors[t].name for t in acts if self.params_of(t) is None]
        if missing:
            return None, {}, f"no parameters for input {missing[0]}"
        consts = [t for t in rec.inputs if self.is_float_const(t)]
        if consts and k not in ("weighted",) and not int8_ops.takes_const_operands(rec.builtin) \
                and rec.builtin not in ("PADV2",):
            return None, {}, "float constant operand"
        out_qp: Dict[int, QP] = {}
        for t in outs:
            if k == "same":
                out_qp[t] = self.params_of(acts[0])
            elif k == "fixed":
                out_qp[t] = int8_ops.fixed_output(rec.builtin)
            else:
                p = self.params_of(t)
                if p is None:
                    return None, {}, f"no parameters for output {self.sg.tensors[t].name}"
                out_qp[t] = p
        if k == "free" and any(t in self.norm_inputs for t in outs):
            # x - mean(x), then / std(x): int8 error in x is divided by each row's std, so
            # rows of small spread (a ViT's class and detection tokens beside its patch
            # tokens) lose everything (YOLOS: LayerNorm outputs at cosine 0.64-0.77, the
            # logits at -0.82). The op making x (a residual ADD) computes in float.
            return None, {}, NORM_INPUT
        if k == "free" and out_qp:
            refused = int8_ops.kernel_refuses(
                rec.builtin, [self._scale_of(t) for t in rec.inputs if t >= 0],
                next(iter(out_qp.values()))[0])
            if refused:
                return None, {}, refused
        return k, out_qp, ""

    def _scale_of(self, t: int) -> float:
        """The int8 scale input ``t`` will have: its parameters, or a float constant's
        own per-tensor range (``_const_operand``)."""
        if self.is_float_const(t):
            arr = self.const_array(t)
            return _own_range(arr)[0] if arr.size else 1.0
        p = self.params_of(t)
        return p[0] if p is not None else 1.0

    def feeds_int8(self, t: int, depth: int = 0) -> bool:
        """Whether an op that will run in int8 reads ``t`` (through same-scale ops)."""
        if t in self.sg.outputs and self.io_dtype == "int8":
            return True
        for rec in self.readers.get(t, ()):
            k = int8_ops.kind(rec.builtin)
            name = self.sg.tensors[rec.outputs[0]].name if rec.outputs else ""
            if k is None or self.onnx.float_override(name) is not None:
                continue
            if k != "same" or depth >= 8 or any(self.feeds_int8(o, depth + 1)
                                                for o in rec.outputs):
                return True
        return False

    def _act_inputs(self, rec: OpRecord, k: str) -> List[int]:
        if k == "weighted":
            return [rec.inputs[int8_ops.weighted_inputs(rec.builtin)[0]]]
        return [t for t in rec.inputs if t >= 0]

    def rewrite(self, rec: OpRecord) -> None:
        if not any(self.is_act(t) for t in list(rec.inputs) + list(rec.outputs)):
            self.new_ops.append(rec)      # integer-only (indices, shapes): nothing to quantize
            return
        k, out_qp, why = self.plan(rec)
        if k == "weighted":
            ok, why = self._weighted(rec, out_qp)
            if ok:
                self.report.int8_ops += 1
                return
        elif k is not None:
            self._plain(rec, k, out_qp)
            self.report.int8_ops += 1
            return
        name = self.sg.tensors[rec.outputs[0]].name if rec.outputs else "?"
        if why == MOVES_FLOAT:
            self.report.float_moves += 1
        else:
            self.report.float_ops.append((rec.builtin, name, why))
        rec.inputs = [self.dequantized(t) if t >= 0 else t for t in rec.inputs]
        for t in rec.outputs:
            self.home.setdefault(t, "float")
        self.new_ops.append(rec)

    def _plain(self, rec: OpRecord, k: str, out_qp: Dict[int, QP]) -> None:
        target = next(iter(out_qp.values()), None)
        new_inputs = []
        for t in rec.inputs:
            if self.is_act(t):
                want = target if k == "requant" else self.qp[t]
                new_inputs.append(self.quantized(t, want))
            elif self.is_float_const(t):
                new_inputs.append(self._const_operand(rec, t, target))
            else:
                new_inputs.append(t)
        rec.inputs = new_inputs
        for t, qp in out_qp.items():
            self.make_int8(t, qp)
        self.new_ops.append(rec)

    def _const_operand(self, rec: OpRecord, t: int, out_qp: Optional[QP]) -> int:
        arr = self.const_array(t)
        if rec.builtin == "PADV2":
            qp = self.qp[rec.inputs[0]]
        elif int8_ops.kind(rec.builtin) == "requant" and out_qp is not None:
            qp = out_qp               # compared or copied as raw int8: the output's terms
        else:
            qp = _own_range(arr)
        q = quantize(arr, qp[0], qp[1], -128, 127, compute=np.float32).astype(np.int8)
        return self.sg.const(f"{self.sg.tensors[t].name}_int8", q, quant=_qparams(qp))

    def _weighted(self, rec: OpRecord, out_qp: Dict[int, QP]) -> Tuple[bool, str]:
        di, wi, bi, axis = int8_ops.weighted_inputs(rec.builtin)
        out_name = self.sg.tensors[rec.outputs[0]].name
        node = self.onnx.layer_node(out_name)
        wq = None
        if node is not None and len(node.inputs) > 1 and node.inputs[1] is not None:
            wq = _weight_entry(self.onnx.table, node.inputs[1])
        if wq is None:
            return False, "the table has no weight entry for this layer"
        if not self.is_float_const(rec.inputs[wi]):
            return False, "weight is not a float constant"
        w = self.const_array(rec.inputs[wi])
        scales = wq.scales_for(w.shape[axis])
        if scales.size != w.shape[axis] or any(z != 0 for z in wq.zero_point):
            return False, "weight quantization does not fit TFLite (symmetric, per output channel)"
        lo = max(wq.qrange[0], -127)
        q = quantize(w, scales, 0, lo, 127, axis).astype(np.int8)
        in_t = rec.inputs[di]
        in_qp = self.qp[in_t]
        new_inputs = list(rec.inputs)
        new_inputs[di] = self.quantized(in_t, in_qp)
        new_inputs[wi] = self.sg.const(f"{self.sg.tensors[rec.inputs[wi]].name}_int8", q,
                                       quant=quant_params(scales, [0] * scales.size, axis))
        if bi < len(rec.inputs) and rec.inputs[bi] >= 0:
            b = self.const_array(rec.inputs[bi]).reshape(-1)
            qb, sb = quantize_bias(b, in_qp[0], scales)
            new_inputs[bi] = self.sg.const(f"{self.sg.tensors[rec.inputs[bi]].name}_int32", qb,
                                           quant=quant_params(sb, [0] * sb.size, 0))
        rec.inputs = new_inputs
        for t, qp in out_qp.items():
            self.make_int8(t, qp)
        self.new_ops.append(rec)
        return True, ""


def quantize_subgraph(sg: SubgraphBuilder, model: Any, table: Any, io_dtype: str,
                      inputs: List[Tuple[str, int]], outputs: List[Tuple[str, int]]
                      ) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]], Int8Report]:
    """Rewrite ``sg`` (float, as lowered) into full int8; returns the new I/O and a report."""
    rw = _Rewriter(sg, _Onnx(model, table), io_dtype)
    new_inputs = []
    for name, t in inputs:
        if io_dtype == "int8" and sg.tensors[t].type == F32:
            qp = rw.params_of(t)
            if qp is None:
                raise ConversionError(f"tflite: io_dtype='int8' but the table has no entry for "
                                      f"input {name!r}")
            rw.make_int8(t, qp)
        else:
            rw.home[t] = "float"
        new_inputs.append((name, t))
    for rec in list(sg.ops):
        rw.rewrite(rec)
    new_outputs = []
    for name, t in outputs:
        if io_dtype == "int8" and rw.home.get(t) != "int8" and sg.tensors[t].type == F32:
            qp = rw.params_of(t)
            if qp is None:
                raise ConversionError(f"tflite: io_dtype='int8' but the table has no entry for "
                                      f"output {name!r}")
            t = rw.quantized(t, qp)
        elif io_dtype != "int8" and rw.home.get(t) == "int8":
            t = rw.dequantized(t)
        new_outputs.append((name, t))
    sg.ops = rw.new_ops
    sg.inputs = [t for _, t in new_inputs]
    sg.outputs = [t for _, t in new_outputs]
    remap = _compact(sg, [t for _, t in new_inputs] + [t for _, t in new_outputs])
    return ([(n, remap[t]) for n, t in new_inputs], [(n, remap[t]) for n, t in new_outputs],
            rw.report)


def _compact(sg: SubgraphBuilder, keep: List[int]) -> Dict[int, int]:
    """Drop tensors (and their buffers) no op reads or writes; returns old -> new index."""
    used = set(keep)
    for rec in sg.ops:
        used.update(t for t in rec.inputs + rec.outputs if t >= 0)
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    buf_used = sorted({sg.tensors[t].buffer for t in order if sg.tensors[t].buffer})
    buf_map = {0: 0}
    buf_map.update({old: new + 1 for new, old in enumerate(buf_used)})
    sg.buffers = [sg.buffers[0]] + [sg.buffers[b] for b in buf_used]
    sg.buffer_data = [sg.buffer_data[0]] + [sg.buffer_data[b] for b in buf_used]
    sg.tensors = [sg.tensors[t] for t in order]
    for ten in sg.tensors:
        ten.buffer = buf_map[ten.buffer]
    for rec in sg.ops:
        rec.inputs = [remap[t] if t >= 0 else t for t in rec.inputs]
        rec.outputs = [remap[t] for t in rec.outputs]
    sg.inputs = [remap[t] for t in sg.inputs if t in remap]
    sg.outputs = [remap[t] for t in sg.outputs if t in remap]
    sg._const_cache = {}
    return remap


def _weight_entry(table, value):
    """The table's entry for weight ``value``, also when a TFLite pre-pass reordered its
    output channels under a new name (``patterns.crd_to_dcr``): then the original's
    per-channel scales, in the new order."""
    from converters.tflite.patterns import CHANNEL_ORDER, PERMUTED_FROM

    wq = table.weights.get(value.name)
    if wq is not None or PERMUTED_FROM not in value.metadata_props:
        return wq
    orig = table.weights.get(value.metadata_props[PERMUTED_FROM])
    if orig is None or not orig.per_channel or len(orig.scale) == 1:
        return orig
    order = [int(i) for i in value.metadata_props[CHANNEL_ORDER].split(",")]
    if orig.axis != 0 or len(order) != len(orig.scale):
        return None
    return dataclasses.replace(orig, scale=tuple(orig.scale[i] for i in order),
                               zero_point=tuple(orig.zero_point[i] for i in order))
