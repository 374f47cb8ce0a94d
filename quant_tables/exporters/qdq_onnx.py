"""A table written back into a float ONNX model as QuantizeLinear/DequantizeLinear pairs.

The QDQ model is the table's *simulation*: ONNX Runtime (optimizations off) runs
it as fake quantization, so it is the reference an int8 TFLite or MNN model
should agree with, layer by layer (``edgert quant-debug``). It is also the
inverse of ``producers.qdq_onnx.extract_qdq`` (tested as a round trip).

QDQ cannot say "clamp to a narrower range than the dtype" (PyTorch's
``reduce_range``): such entries are simulated over the dtype's full range and
listed in the notes.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from edgert.op_registry import default_opset
from quant_tables.errors import TableError
from quant_tables.qparams import dtype_range
from quant_tables.table import QuantTable

_NP = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16}


def _zp_array(dtype: str, zp, name: str) -> np.ndarray:
    if dtype not in _NP:
        raise TableError(f"tensor {name!r}: dtype {dtype} cannot be written as ONNX QDQ "
                         f"(supported: {', '.join(_NP)})")
    return np.asarray(zp, dtype=_NP[dtype])


def insert_qdq(model: Any, table: QuantTable, activations: bool = True, weights: bool = True,
               skip: Optional[set] = None) -> Tuple[Any, List[str]]:
    """(QDQ ModelProto, notes). ``skip``: tensor names to leave in float."""
    import onnx_ir as ir
    from quant_tables.onnx_tensors import load_model

    proto = _at_opset(load_model(model), _needed_opset(table))
    irm = ir.serde.deserialize_model(proto)
    g = irm.graph
    notes: List[str] = []
    skip = set(skip or ())
    values = {v.name: v for v in g.inputs}
    for n in g:
        for o in n.outputs:
            values[o.name] = o
    if activations:
        for name, a in table.activations.items():
            if name in skip or name not in values:
                continue
            if (a.quant_min, a.quant_max) != (None, None) and a.qrange != dtype_range(a.dtype):
                notes.append(f"{name}: quant range {a.qrange} simulated as the full {a.dtype} range")
            _wrap_value(values[name], np.float32(a.scale), _zp_array(a.dtype, a.zero_point, name),
                        None, g, ir)
    if weights:
        for name, w in table.weights.items():
            if name in skip or name not in g.initializers:
                continue
            scale = np.asarray(w.scale, dtype=np.float32)
            zp = _zp_array(w.dtype, w.zero_point, name)
            if w.axis is None:
                scale, zp = scale.reshape(()), zp.reshape(())
            _wrap_value(g.initializers[name], scale, zp, w.axis, g, ir)
    return ir.serde.serialize_model(irm), notes


def _wrap_value(x, scale: np.ndarray, zp: np.ndarray, axis: Optional[int], g, ir) -> None:
    """x -> Q -> DQ -> (every former user of x); graph outputs keep their name."""
    base = x.name
    s = ir.Value(name=f"{base}__qdq_scale", const_value=ir.tensor(scale))
    z = ir.Value(name=f"{base}__qdq_zero_point", const_value=ir.tensor(zp))
    g.register_initializer(s)
    g.register_initializer(z)
    attrs = {"axis": int(axis)} if axis is not None else {}
    users = list(x.uses())
    was_output = x.is_graph_output()
    q = ir.node("QuantizeLinear", [x, s, z], attributes=attrs, name=f"{base}__Q")
    dq = ir.node("DequantizeLinear", [q.outputs[0], s, z], attributes=attrs, name=f"{base}__DQ")
    q.outputs[0].name = f"{base}__q"
    dq.outputs[0].name = f"{base}__dq"
    dq.outputs[0].type = x.type
    dq.outputs[0].shape = x.shape
    _insert_after(x, [q, dq], g)
    for use in users:
        use.node.replace_input_with(use.idx, dq.outputs[0])
    if was_output:
        idx = [i for i, o in enumerate(g.outputs) if o is x]
        x.name = f"{base}__float"
        dq.outputs[0].name = base
        for i in idx:
            g.outputs[i] = dq.outputs[0]


def _insert_after(x, nodes, g) -> None:
    producer = x.producer()
    if producer is None:  # graph input or initializer: before every node
        first = next(iter(g), None)
        if first is None:
            g.extend(nodes)
        else:
            g.insert_before(first, nodes)
    else:
        g.insert_after(producer, nodes)


def _needed_opset(table: QuantTable) -> int:
    """13 for per-axis QDQ; 21 for 16-bit types."""
    dtypes = {a.dtype for a in table.activations.values()} | {w.dtype for w in table.weights.values()}
    return 21 if any("16" in d for d in dtypes) else 13


def _at_opset(proto, needed: int):
    have = default_opset({o.domain: o.version for o in proto.opset_import}, 1)
    if have >= needed:
        return proto
    import onnx.version_converter

    try:
        return onnx.version_converter.convert_version(proto, needed)
    except Exception as exc:
        raise TableError(f"the model uses opset {have}; QDQ simulation needs opset {needed} and "
                         f"the ONNX version converter failed: {exc}") from None
