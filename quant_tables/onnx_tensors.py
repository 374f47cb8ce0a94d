"""Run an ONNX model with ONNX Runtime and read its intermediate tensors.

Calibration, the QAT name matching and quant-debug all need the float value of
every intermediate tensor. ONNX Runtime only returns graph outputs, so this
adds the wanted tensors as outputs (types from ONNX shape inference) and runs
with graph optimizations off, so no tensor is fused away.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from edgert.errors import InputError
from quant_tables.errors import TableSourceError

_FLOAT_TYPES = (1, 10, 16)  # TensorProto.FLOAT, FLOAT16, BFLOAT16


def load_model(model: Any):
    """An ``onnx.ModelProto`` from a path, bytes, a ModelProto or an ``onnx_ir.Model``."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (str, Path)):
        try:
            return onnx.load(str(model))
        except Exception as exc:  # onnx raises DecodeError, OSError, ...
            raise TableSourceError(f"{model}: cannot read as ONNX ({exc})") from None
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if hasattr(model, "graph") and hasattr(model.graph, "initializers"):  # onnx_ir.Model
        import onnx_ir as ir
        return ir.serde.serialize_model(model)
    raise TableSourceError(f"not an ONNX model: {type(model).__name__}")


def infer(model):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is best effort; ORT will still run the model
        return model


def float_tensors(model) -> List[str]:
    """Graph inputs and node outputs of float type, in graph order (no constants)."""
    inferred = infer(model)
    g = inferred.graph
    consts = {i.name for i in g.initializer}
    types = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    names: List[str] = [i.name for i in g.input if i.name not in consts
                        and types.get(i.name) in _FLOAT_TYPES]
    for n in g.node:
        if n.op_type == "Constant":
            continue
        for o in n.output:
            if o and types.get(o) in _FLOAT_TYPES and o not in names:
                names.append(o)
    return names


class TensorTap:
    """An ORT session of ``model`` whose outputs include ``names`` (default: all float tensors)."""

    def __init__(self, model: Any, names: Optional[Iterable[str]] = None, threads: int = 0) -> None:
        import onnx
        import onnxruntime as ort

        proto = load_model(model)
        inferred = infer(proto)
        g = inferred.graph
        self.graph_outputs = [o.name for o in g.output]
        wanted = list(names) if names is not None else float_tensors(proto)
        vis = {vi.name: vi for vi in list(g.value_info) + list(g.output) + list(g.input)}
        exposed = onnx.ModelProto()
        exposed.CopyFrom(inferred)
        have = set(self.graph_outputs)
        self.names: List[str] = []
        for n in wanted:
            if n in vis and vis[n].type.HasField("tensor_type"):
                self.names.append(n)
                if n not in have and n not in {i.name for i in g.input}:
                    exposed.graph.output.append(vis[n])
                    have.add(n)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(exposed.SerializeToString(), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TableSourceError(f"ONNX Runtime cannot load the model: {exc}") from None
        self.inputs = self.session.get_inputs()
        self._out_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Every exposed tensor (and the inputs) for one feed."""
        expected = {i.name for i in self.inputs}
        unknown = set(feeds) - expected
        if unknown or expected - set(feeds):
            raise InputError(f"feeds {sorted(feeds)} do not match the model inputs "
                             f"{sorted(expected)}")
        outs = self.session.run(self._out_names, dict(feeds))
        result = dict(zip(self._out_names, outs))
        for k, v in feeds.items():
            result.setdefault(k, np.asarray(v))
        return {n: result[n] for n in self.names if n in result} | {
            o: result[o] for o in self.graph_outputs if o in result}


def input_specs(model) -> Dict[str, Sequence[Union[int, str, None]]]:
    """Graph input name -> shape (dynamic dims as None), constants excluded."""
    g = load_model(model).graph
    consts = {i.name for i in g.initializer}
    out = {}
    for vi in g.input:
        if vi.name in consts:
            continue
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return out
