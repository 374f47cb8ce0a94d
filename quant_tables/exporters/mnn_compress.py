"""A quantization table as MNN compression params (the JSON form of MNN_compression.proto).

MNN's converter (``--compressionParamsFile x.json``; JSON when the name ends in
``.json``) reads a ``Pipeline`` message: ``algo[].quantParams.layer[]``, one
``LayerQuantizeParams`` per convolution with ``input``/``output`` activation
params (``name``, ``bits``, ``scales``, ``zeroPoint``, ``clampMin``, ``clampMax``)
and ``weight`` params (symmetric, one scale per output channel). Its
``FullQuantAndCoding`` step matches a layer by ``output[0].name`` against the
convolution's output tensor *after MNN's own fusion*: a Conv followed by Relu
or Relu6 becomes one op whose output is the activation's tensor. It only turns
Convolution/ConvolutionDepthwise ops into int8 (MatMul/Gemm with a constant
weight become convolutions and match with a ``__matmul_converted`` suffix).

MNN's int8 is signed: uint8 entries are shifted to int8 (zero point - 128).
The field names follow protobuf's JSON mapping (lowerCamelCase), as MNN writes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edgert.fused_activations import clip_activation
from quant_tables.layer_weights import LayerWeight, layer_weights
from quant_tables.qparams import INT_DTYPES, to_signed
from quant_tables.table import ActivationQuant, QuantTable, WeightQuant

FUSED_ACTIVATIONS = ("Relu", "Clip")  # MNN folds these into the convolution
LAYER_OPS = ("Conv", "Gemm", "MatMul")
# MNN 3.6 turns Gemm/MatMul with a constant weight into a convolution; with 65536
# or more weight elements its int8 path then fails at load ("Read shape error",
# "no quantized weight data for ConvInt8"). Measured: 255x257 works, 256x256 fails.
MATMUL_MAX_INT8_WEIGHTS = 65535
# MNN renames a layer that produces a graph output to "<name>__before_tr" (the
# graph output becomes a layout conversion after it); the layer is listed under
# both names so FullQuantAndCoding finds it either way.
GRAPH_OUTPUT_SUFFIX = "__before_tr"
# MNN 3.6 hands an int8 layer's output to a bidirectional LSTM/GRU/RNN wrongly: a
# Conv1d -> Relu -> Transpose -> bidirectional GRU at int8 gave cosine 0.25 and
# crashed the process (SIGSEGV) within a few runs; the same with the GRU one-way, or
# with the Conv in float, is right. A layer whose output reaches such an RNN through
# layout-only ops stays float.
LAYOUT_ONLY = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity")
RNN_OPS = ("LSTM", "GRU", "RNN")


@dataclass
class MNNParamsReport:
    layers: List[str] = field(default_factory=list)                # output tensors quantized
    skipped: List[Tuple[str, str]] = field(default_factory=list)   # (node, reason)
    symmetric: List[str] = field(default_factory=list)             # re-expressed with zp 0


CONV_LIKE = ("Conv", "Gemm", "MatMul", "ConvTranspose")
SYMMETRIC_MODES = ("auto", "all", "none")


def _conv_only(t: str, producer: Dict[str, Any], consumers: Dict[str, List[Any]]) -> bool:
    """Produced by a convolution (or its fused Relu/Relu6, or the graph input) and read
    only by convolutions: MNN's int8 convolution handles any zero point there."""
    p = producer.get(t)
    if p is not None and p.op_type not in CONV_LIKE:
        src = producer.get(p.input[0]) if p.op_type in FUSED_ACTIVATIONS and p.input else None
        if src is None or src.op_type not in CONV_LIKE:
            return False
    for c in consumers.get(t, []):
        if c.op_type in CONV_LIKE and c.input and c.input[0] == t:
            continue
        if c.op_type in FUSED_ACTIVATIONS and p is not None and p.op_type in CONV_LIKE:
            continue
        return False
    return True


def symmetric_for_mnn(table: QuantTable, model, mode: str = "auto") -> List[str]:
    """Re-express int8 activations with zero point 0 where MNN needs it; return their names.

    MNN's x86 int8 kernels keep int8 data offset by 128; its int8 MaxPool compares
    the bytes as signed values and its int8 elementwise ops (the residual Add, a
    standalone ReLU) assume zero point 0 the same way: with an asymmetric table
    they return wrong values (measured on the zoo's ResNet-18: cosine 0.78 against
    float, 0.994 with this). MNN's own calibration is symmetric, so it never meets
    this. ``auto`` keeps asymmetric parameters where only convolutions touch the
    tensor (they are exact with any zero point) and makes every other int8 tensor
    symmetric, covering its range with one scale; ``all`` does it everywhere,
    ``none`` nowhere. One bit of resolution for post-ReLU tensors is the price.
    """
    from quant_tables.propagate import PASSTHROUGH
    from quant_tables.qparams import to_signed

    if mode not in SYMMETRIC_MODES:
        raise ValueError(f"symmetric mode {mode!r}; modes: {', '.join(SYMMETRIC_MODES)}")
    if mode == "none":
        return []
    producer: Dict[str, Any] = {}
    consumers: Dict[str, List[Any]] = {}
    for n in model.graph.node:
        for o in n.output:
            producer[o] = n
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    changed: List[str] = []
    for t, e in list(table.activations.items()):
        if e.dtype not in ("int8", "uint8"):
            continue
        if int(to_signed(e.zero_point, *e.qrange, e.dtype)[0]) == 0:
            continue
        if mode == "auto" and _conv_only(t, producer, consumers):
            continue
        amax = max(abs(e.real_range[0]), abs(e.real_range[1]))
        table.activations[t] = ActivationQuant(scale=amax / 127.0, zero_point=0, dtype="int8",
                                               min=e.min, max=e.max,
                                               source=f"{e.source or 'table'}+mnn_symmetric")
        changed.append(t)
    for n in model.graph.node:   # same-scale ops keep one scale from input to output
        if n.op_type in PASSTHROUGH and n.input and n.input[0] in table.activations:
            for o in n.output:
                if o in table.activations and o in changed or n.input[0] in changed:
                    table.activations[o] = table.activations[n.input[0]]
    return sorted(set(changed))


def _act_params(name: str, a: ActivationQuant) -> Optional[Dict[str, Any]]:
    if a.dtype not in ("int8", "uint8"):
        return None
    lo, hi = a.qrange
    zp, lo, hi = to_signed(a.zero_point, lo, hi, a.dtype)
    return {"name": name, "bits": 8, "scales": [float(a.scale)], "zeroPoint": int(zp),
            "clampMin": int(lo), "clampMax": int(hi)}


def _weight_params(lw: LayerWeight, w: WeightQuant) -> Tuple[Optional[Dict[str, Any]], str]:
    if w.dtype != "int8" or INT_DTYPES.get(w.dtype, (False,))[0] is False:
        return None, f"weight dtype {w.dtype} (MNN full int8 takes int8 weights)"
    if any(z != 0 for z in w.zero_point):
        return None, "asymmetric weights (MNN's int8 convolution takes symmetric weights)"
    channels = lw.shape[lw.axis]
    if w.axis is not None and w.axis % len(lw.shape) != lw.axis:
        return None, (f"per-channel axis {w.axis} is not the output-channel axis {lw.axis}")
    lo, hi = w.qrange
    scales = w.scales_for(channels)
    return {"name": lw.name, "bits": 8, "scales": [float(s) for s in scales],
            "clampMin": int(lo), "clampMax": int(hi)}, ""


def _fused_output(model, node_output: str) -> str:
    """The tensor MNN names the layer by: the Relu/Relu6 output when it is fused in."""
    users = [n for n in model.graph.node if node_output in n.input]
    if len(users) == 1 and users[0].op_type in FUSED_ACTIVATIONS and \
            node_output not in {o.name for o in model.graph.output}:
        if users[0].op_type == "Clip" and not _is_relu6(model, users[0]):
            return node_output
        return users[0].output[0]
    return node_output


def _feeds_bidirectional_rnn(model, tensor: str) -> Optional[str]:
    """The name of a bidirectional RNN ``tensor`` reaches through layout-only ops."""
    todo, seen = [tensor], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for n in model.graph.node:
            if t not in n.input:
                continue
            if n.op_type in RNN_OPS and any(
                    a.name == "direction" and a.s == b"bidirectional" for a in n.attribute):
                return n.name or n.output[0]
            if n.op_type in LAYOUT_ONLY and n.input and n.input[0] == t:
                todo.extend(o for o in n.output if o)
    return None


def _is_relu6(model, clip) -> bool:
    from quant_tables.layer_weights import constant_arrays

    consts = constant_arrays(model)
    vals = [consts.get(i) if i else None for i in list(clip.input[1:3])]
    attrs = {a.name: a.f for a in clip.attribute}
    lo = float(vals[0]) if len(vals) > 0 and vals[0] is not None else attrs.get("min")
    hi = float(vals[1]) if len(vals) > 1 and vals[1] is not None else attrs.get("max")
    return clip_activation(lo, hi) == "RELU6"


def mnn_compression_params(table: QuantTable, model: Any, symmetric: str = "auto"
                           ) -> Tuple[Dict[str, Any], MNNParamsReport]:
    """(Pipeline as a JSON-ready dict, report of layers quantized and skipped).

    ``symmetric``: see ``symmetric_for_mnn`` (a copy of the table is changed).
    """
    import copy

    from quant_tables.onnx_tensors import load_model

    proto = load_model(model)
    report = MNNParamsReport()
    if symmetric != "none":
        table = copy.deepcopy(table)
        report.symmetric = symmetric_for_mnn(table, proto, symmetric)
    graph_outputs = {o.name for o in proto.graph.output}
    layers = []
    for lw in layer_weights(proto):
        if lw.op_type not in LAYER_OPS:
            report.skipped.append((lw.node, f"{lw.op_type} stays float in MNN's int8 path"))
            continue
        layer, why = _layer(table, proto, lw)
        if layer is None:
            report.skipped.append((lw.node or lw.output, why))
            continue
        layers.append(layer)
        report.layers.append(layer["output"][0]["name"])
        if layer["output"][0]["name"] in graph_outputs:
            layers.append(_renamed(layer, layer["output"][0]["name"] + GRAPH_OUTPUT_SUFFIX))
    doc = {"version": "0.0.0",
           "algo": [{"type": "QUANTIZE", "quantParams": {"layer": layers}}]}
    return doc, report


def _layer(table: QuantTable, proto, lw: LayerWeight) -> Tuple[Optional[Dict[str, Any]], str]:
    if table.float_override(lw.node, lw.op_type, [lw.output]) is not None:
        return None, "kept in float by the table"
    if lw.op_type != "Conv" and int(np.prod(lw.shape)) > MATMUL_MAX_INT8_WEIGHTS:
        return None, (f"{lw.op_type} weight of {int(np.prod(lw.shape))} elements: MNN's int8 "
                      f"matmul fails from {MATMUL_MAX_INT8_WEIGHTS + 1} (MNN 3.6 bug)")
    out_name = _fused_output(proto, lw.output)
    rnn = _feeds_bidirectional_rnn(proto, out_name)
    if rnn is not None:
        return None, (f"feeds the bidirectional RNN {rnn}: MNN's int8 output into it is "
                      "wrong and can crash (MNN 3.6 bug)")
    a_in = table.activations.get(lw.input)
    a_out = table.activations.get(out_name) or table.activations.get(lw.output)
    w = table.weights.get(lw.name)
    missing = [k for k, v in (("input " + lw.input, a_in), ("output " + out_name, a_out),
                              ("weight " + lw.name, w)) if v is None]
    if missing:
        return None, "table lacks " + ", ".join(missing)
    inp, outp = _act_params(lw.input, a_in), _act_params(out_name, a_out)
    if inp is None or outp is None:
        return None, "activations are not 8-bit (MNN full int8 takes int8)"
    wp, why = _weight_params(lw, w)
    if wp is None:
        return None, why
    return {"input": [inp], "weight": [wp], "output": [outp], "method": "QAT"}, ""


def _renamed(layer: Dict[str, Any], name: str) -> Dict[str, Any]:
    out = dict(layer)
    out["output"] = [dict(layer["output"][0], name=name)]
    return out


def write_mnn_compression_params(table: QuantTable, model: Any, path: str,
                                 symmetric: str = "auto") -> MNNParamsReport:
    """Write the params as JSON (``path`` must end in .json: MNN picks the parser by suffix)."""
    if not os.fspath(path).endswith(".json"):
        from quant_tables.errors import TableError
        raise TableError(f"{path}: MNN reads compression params as JSON only when the file name "
                         f"ends in .json")
    doc, report = mnn_compression_params(table, model, symmetric)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return report


def scales_array(doc: Dict[str, Any], output: str) -> Optional[np.ndarray]:
    """Weight scales of the layer named ``output`` in a params doc (for inspection/tests)."""
    for layer in doc["algo"][0]["quantParams"]["layer"]:
        if layer["output"][0]["name"] == output:
            return np.asarray(layer["weight"][0]["scales"])
    return None
