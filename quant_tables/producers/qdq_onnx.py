"""From a QDQ ONNX model: the quantization table plus the float model without Q/DQ.

Quantization tools (onnxruntime's ``quantize_static``, AIMET, NNCF, torch.onnx of a
fake-quant model) write QuantizeLinear -> DequantizeLinear pairs around the
tensors they quantize. MNN's converter does not turn those into working int8
models, and the TFLite writer wants a float graph plus a table. This reads the
scales and zero points of every pair into a table keyed by the float tensor's
name and removes the pairs:

* activation ``x -> Q -> DQ -> consumers`` becomes ``x -> consumers``;
* a quantized constant ``W_q -> DQ`` (or a float constant ``W -> Q -> DQ``)
  becomes a float constant holding the dequantized values, so the float model
  computes exactly what the QDQ model simulated.

Int32 constants behind DequantizeLinear are biases (scale = s_in * s_w); they
become float biases and no table entry (backends derive bias scales).
Graph surgery uses onnx-ir (values know their producer and uses).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import numpy as np

from quant_tables.errors import TableSourceError
from quant_tables.errors import TableError
from quant_tables.layer_weights import weight_axis
from quant_tables.provenance import Provenance
from quant_tables.qparams import INT_DTYPES
from quant_tables.table import ActivationQuant, QuantTable, WeightQuant

_QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class QDQResult:
    model: Any                    # onnx.ModelProto, float, without Q/DQ
    table: QuantTable
    removed: int = 0              # Q/DQ nodes removed
    notes: List[str] = field(default_factory=list)
    restored_relus: List[str] = field(default_factory=list)   # tensors given their ReLU back


def _params(node, ir) -> Tuple[np.ndarray, np.ndarray, Optional[int], str]:
    """(scale, zero point, axis or None, dtype name) of a Q or DQ node."""
    get = ir.convenience.get_const_tensor
    s = get(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if s is None:
        raise TableSourceError(f"{node.op_type} {node.name!r}: its scale is not a constant; "
                               f"cannot read a quantization table from it")
    if "block_size" in node.attributes and node.attributes["block_size"].as_int():
        raise TableSourceError(f"{node.op_type} {node.name!r}: block-wise quantization "
                               f"(block_size) has no place in a per-channel table")
    zp_v = node.inputs[2] if len(node.inputs) > 2 else None
    zp = get(zp_v) if zp_v is not None else None
    if zp is not None:
        zp_arr = zp.numpy()
        dtype = np.dtype(zp_arr.dtype).name if zp_arr.dtype.kind in "iu" else str(zp.dtype)
    else:
        od = node.attributes.get("output_dtype")
        dtype = _ir_dtype_name(od.as_int()) if od is not None and od.as_int() else "uint8"
        zp_arr = np.zeros(s.numpy().shape, dtype=np.int64)
    dtype = {"int4": "int4", "uint4": "uint4"}.get(dtype, dtype)
    if dtype not in INT_DTYPES:
        raise TableSourceError(f"{node.op_type} {node.name!r}: zero point type {dtype} is not "
                               f"an integer type a table can hold")
    scale = np.asarray(s.numpy(), dtype=np.float64).reshape(-1)
    zpv = np.asarray(zp_arr, dtype=np.int64).reshape(-1)
    axis = None
    if scale.size > 1:
        axis = node.attributes["axis"].as_int() if "axis" in node.attributes else 1
    return scale, zpv, axis, dtype


def _ir_dtype_name(code: int) -> str:
    import onnx

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code)).name


def _same(a: Tuple, b: Tuple) -> bool:
    return (a[2] == b[2] and a[3] == b[3] and a[0].shape == b[0].shape
            and np.allclose(a[0], b[0], rtol=1e-6, atol=0) and np.array_equal(a[1], b[1]))


# onnxruntime's other quantized forms: integer arithmetic in the graph, not Q/DQ pairs
_DYNAMIC_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                "DynamicQuantizeMatMul")
_QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul",
                  "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat",
                  "QLinearSigmoid", "QLinearLeakyRelu", "QGemm", "QLinearSoftmax")


def integer_form(proto) -> Optional[str]:
    """What is wrong with reading ``proto`` as a QDQ model when onnxruntime quantized it
    with ``quantize_dynamic`` (activations quantized at run time: DynamicQuantizeLinear +
    MatMulInteger/ConvInteger) or in its QOperator format (QLinearConv...), and what to
    pass instead; None for any other model."""
    found = [(n.name or n.output[0], n.op_type) for n in proto.graph.node
             if n.op_type in _DYNAMIC_OPS + _QOPERATOR_OPS]
    if not found:
        return None
    name, op = found[0]
    where = f"node {name!r} ({op}" + (f", and {len(found) - 1} more" if len(found) > 1
                                      else "") + ")"
    if any(o in _DYNAMIC_OPS for _, o in found):
        return (f"the model is quantized with onnxruntime's quantize_dynamic ({where}): its "
                f"activations are quantized at run time, which neither MNN nor TFLite files "
                f"express. Convert the float model instead: precision='int8_weights' "
                f"(--precision int8_weights) keeps the same idea (int8 weights, float "
                f"activations), or 'int8' with calibration data for full int8")
    return (f"the model is quantized in onnxruntime's QOperator format ({where}): edgert "
            f"reads quantized ONNX as QuantizeLinear/DequantizeLinear pairs. Quantize with "
            f"quant_format=QuantFormat.QDQ (onnxruntime's default), or convert the float "
            f"model with a quantization table or calibration data")


def extract_qdq(model: Any, source_name: str = "") -> QDQResult:
    """The table and the float model of a QDQ ONNX ``model`` (path, proto or onnx_ir).
    A model of onnxruntime's integer forms, or one without any Q/DQ node, is refused
    (the import wrote an empty table and a "float" model that still held them)."""
    import onnx_ir as ir
    from quant_tables.onnx_tensors import load_model

    proto = load_model(model)
    problem = integer_form(proto)
    if problem:
        raise TableSourceError(problem)
    if not any(n.op_type in _QDQ for n in proto.graph.node):
        raise TableSourceError("the model holds no QuantizeLinear/DequantizeLinear node: "
                               "not a QDQ model, nothing to import")
    irm = ir.serde.deserialize_model(proto)
    g = irm.graph
    result = QDQResult(model=None, table=QuantTable(
        provenance=Provenance(producer="qdq_onnx", source=source_name or g.name or "onnx model",
                              method="QuantizeLinear/DequantizeLinear")))
    params = [v for n in g if n.op_type in _QDQ for v in n.inputs[1:] if v is not None]
    for node in list(g):
        if node.graph is None:  # already removed with its partner
            continue
        if node.op_type == "QuantizeLinear":
            _strip_q(node, g, ir, result)
        elif node.op_type == "DequantizeLinear":
            _strip_lone_dq(node, g, ir, result)
    _drop_unused_params(g, params)
    left = [n.name for n in g if n.op_type in _QDQ]
    if left:
        raise TableSourceError(f"QDQ stripping left {len(left)} Q/DQ node(s) it could not pair: "
                               f"{left[:5]}")
    if result.restored_relus:
        names = result.restored_relus
        shown = ", ".join(names[:5]) + (f" ... and {len(names) - 5} more" if len(names) > 5
                                         else "")
        result.notes.append(f"restored the ReLU at {len(names)} tensor(s) whose range starts "
                            f"at 0 after a producer that can be negative (the quantizer had "
                            f"folded it away): {shown}")
    result.model = ir.serde.serialize_model(irm)
    return result


def _drop_unused_params(g, values) -> None:
    """Scales and zero points the removed Q/DQ nodes used, now used by nothing."""
    for v in values:
        if v.uses() or v.is_graph_output():
            continue
        if v.is_initializer() and v.name in g.initializers:
            g.initializers.pop(v.name)
        producer = v.producer()
        if producer is not None and producer.op_type == "Constant" and producer.graph is not None:
            g.remove(producer, safe=True)


def _strip_q(q, g, ir, result: QDQResult) -> None:
    x, y = q.inputs[0], q.outputs[0]
    params = _params(q, ir)
    users = list(y.consumers())
    if any(u.op_type != "DequantizeLinear" for u in users) or y.is_graph_output():
        other = sorted({u.op_type for u in users if u.op_type != "DequantizeLinear"})
        raise TableSourceError(
            f"QuantizeLinear {q.name!r}: its output feeds {other or ['a graph output']}, not "
            f"DequantizeLinear; only QDQ-format models (not QOperator format) can be stripped")
    for dq in users:
        if not _same(params, _params(dq, ir)):
            raise TableError(f"tensor {x.name!r}: QuantizeLinear {q.name!r} and "
                             f"DequantizeLinear {dq.name!r} disagree on scale/zero point")
    const = ir.convenience.get_const_tensor(x)
    if const is not None:
        _fold_weight(q, users, x, const.numpy(), params, g, ir, result)
        return
    _record_activation(x.name, params, q.name, result)
    final = _restore_relu(x, params, g, ir, result)
    for dq in users:
        out = dq.outputs[0]
        if out.is_graph_output():
            _take_output_name(out, x, g, result)
        out.replace_all_uses_with(final, replace_graph_outputs=True)
        g.remove(dq, safe=True)
    g.remove(q, safe=True)
    result.removed += 1 + len(users)


def _restore_relu(x, params, g, ir, result: QDQResult):
    """Put back the ReLU a quantizer folded into the quantization range.

    onnxruntime's quantizer deletes a Relu (or Clip(0, 6)) whose output range
    starts at 0: the zero point at the bottom of the range clamps negatives
    anyway. Stripping the QDQ pair would then leave a float model without the
    ReLU. When the range starts at exactly 0 and the producer cannot be negative
    by itself, a Relu is inserted; it carries the tensor's name (and table entry).
    """
    from quant_tables.qparams import dtype_range

    scale, zp, axis, dtype = params
    producer = x.producer()
    if axis is not None or producer is None or int(zp[0]) != dtype_range(dtype)[0]:
        return x
    if _nonnegative(producer, ir):
        return x
    name = x.name
    x.name = f"{name}__pre_relu"
    relu = ir.node("Relu", [x], name=f"{name}__restored_relu")
    relu.outputs[0].name = name
    relu.outputs[0].type = x.type
    relu.outputs[0].shape = x.shape
    g.insert_after(producer, relu)
    # The quantizer meant the producer's output clamped at 0: the same parameters on the
    # tensor before the ReLU do exactly that (an int8 graph needs an entry for it).
    _record_activation(x.name, params, relu.name, result)
    result.restored_relus.append(name)
    return relu.outputs[0]


_NONNEGATIVE = ("Relu", "Sigmoid", "Softmax", "Abs", "Exp", "Softplus", "HardSigmoid")
# Averages, sums and products of non-negative inputs are non-negative.
_NONNEGATIVE_IF_INPUTS = ("AveragePool", "GlobalAveragePool", "ReduceMean", "ReduceSum",
                          "Concat", "Add", "Mul", "Sum", "Max")


def _nonnegative(node, ir, depth: int = 0) -> bool:
    from quant_tables.propagate import PASSTHROUGH

    if node.op_type in _NONNEGATIVE:
        return True
    if node.op_type in PASSTHROUGH and depth < 64 and node.inputs and node.inputs[0] is not None:
        src = node.inputs[0].producer()
        return src is not None and _nonnegative(src, ir, depth + 1)
    if node.op_type in _NONNEGATIVE_IF_INPUTS and depth < 64:
        data = node.inputs[:1] if node.op_type.startswith("Reduce") else node.inputs
        producers = [v.producer() if v is not None else None for v in data]
        return bool(producers) and all(
            p is not None and _nonnegative(p, ir, depth + 1) for p in producers)
    if node.op_type == "Clip" and len(node.inputs) > 1 and node.inputs[1] is not None:
        lo = ir.convenience.get_const_tensor(node.inputs[1])
        return lo is not None and float(lo.numpy()) >= 0.0
    return False


def _take_output_name(out, x, g, result: QDQResult) -> None:
    """A graph output was the DQ's: the float tensor takes over its name (users see it)."""
    old = x.name
    if old in result.table.activations:
        result.table.activations[out.name] = result.table.activations.pop(old)
    out_name = out.name
    out.name = None
    x.name = out_name
    if x.type is None:
        x.type = out.type
    if x.shape is None:
        x.shape = out.shape
    result.notes.append(f"graph output {out_name!r} was a DequantizeLinear output; the float "
                        f"tensor {old!r} now carries its name")


def _record_activation(name: str, params, node_name: str, result: QDQResult) -> None:
    scale, zp, axis, dtype = params
    if axis is not None:
        raise TableError(f"activation {name!r}: per-channel activation quantization "
                         f"(QuantizeLinear {node_name!r}) is not supported by the table format")
    entry = ActivationQuant(scale=float(scale[0]), zero_point=int(zp[0]), dtype=dtype,
                            source="qdq")
    prev = result.table.activations.get(name)
    if prev is not None and (prev.scale, prev.zero_point) != (entry.scale, entry.zero_point):
        result.notes.append(f"tensor {name!r} is quantized twice with different parameters; "
                            f"kept the first ({prev.scale:g}, {prev.zero_point})")
        return
    result.table.activations[name] = entry


def _weight_entry(params, consumer_axis: Optional[int], name: str, kind: str) -> WeightQuant:
    scale, zp, axis, dtype = params
    sym = bool(np.all(zp == 0)) if INT_DTYPES[dtype][0] else None
    return WeightQuant(scale=scale, zero_point=zp, axis=axis, dtype=dtype, symmetric=sym,
                       source=kind)


def _fold_weight(q, dqs, x, w: np.ndarray, params, g, ir, result: QDQResult) -> None:
    from quant_tables.qparams import dtype_range, fake_quant

    scale, zp, axis, dtype = params
    lo, hi = dtype_range(dtype)
    values = fake_quant(w, scale, zp, lo, hi, axis).astype(w.dtype if w.dtype.kind == "f"
                                                           else np.float32)
    name = x.name
    new = ir.Value(name=None, const_value=ir.tensor(values))
    for dq in dqs:
        dq.outputs[0].replace_all_uses_with(new, replace_graph_outputs=True)
        g.remove(dq, safe=True)
    g.remove(q, safe=True)
    if not x.uses() and x.is_initializer():
        g.initializers.pop(name)
    new.name = name if name not in g.initializers else f"{name}_dequantized"
    g.register_initializer(new)
    result.table.weights[new.name] = _weight_entry(params, None, new.name, "qdq")
    result.removed += 1 + len(dqs)


def _strip_lone_dq(dq, g, ir, result: QDQResult) -> None:
    """DequantizeLinear of a quantized constant (weights, biases) -> a float constant."""
    from quant_tables.qparams import dequantize

    xq = dq.inputs[0]
    const = ir.convenience.get_const_tensor(xq)
    if const is None:
        raise TableSourceError(f"DequantizeLinear {dq.name!r}: its input {xq.name!r} comes from "
                               f"no QuantizeLinear and is not a constant")
    params = _params(dq, ir)
    scale, zp, axis, dtype = params
    q = np.asarray(const.numpy())
    values = dequantize(q, scale, zp, axis)
    out = dq.outputs[0]
    base = xq.name or out.name
    for suffix in ("_quantized", "_q"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    name = base if base not in g.initializers or base == xq.name else out.name
    new = ir.Value(name=None, const_value=ir.tensor(values))
    out.replace_all_uses_with(new, replace_graph_outputs=True)
    g.remove(dq, safe=True)
    out.name = None
    if not xq.uses() and xq.is_initializer():
        g.initializers.pop(xq.name)
    producer = xq.producer()
    if producer is not None and producer.op_type == "Constant" and not xq.uses():
        g.remove(producer, safe=True)
    new.name = name if name not in g.initializers else out.name
    g.register_initializer(new)
    result.removed += 1
    if dtype == "int32":  # a bias: scale follows from input and weight scales
        return
    result.table.weights[new.name] = _weight_entry(params, None, new.name, "qdq")
    _check_axis(new, params, result)


def _check_axis(value, params, result: QDQResult) -> None:
    """Note when a per-channel axis is not the consumer's output-channel axis."""
    axis = params[2]
    if axis is None:
        return
    for use in value.uses():
        node, idx = use.node, use.idx
        attrs = {k: a.value for k, a in node.attributes.items()}
        want = weight_axis(node.op_type, attrs, len(value.shape or ()), node.domain)
        if idx == 1 and want is not None and want != axis % max(1, len(value.shape or ())):
            result.notes.append(f"weight {value.name!r}: per-channel axis {axis} is not the "
                                f"output-channel axis {want} of {node.op_type} {node.name!r}")
