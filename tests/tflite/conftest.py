"""Fixtures of the TFLite backend tests.

Single-op ONNX models are built in code (``onnx.helper``), shape-inferred, run by
ONNX Runtime as the reference and by the real LiteRT interpreter (XNNPACK on,
through ``edgert.load``) after conversion. Zoo models are exported once per
session (``zoo_source``), since the export dominates the cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest


@dataclass
class OpCase:
    """One op-table row: an ONNX op, its inputs (runtime or constant) and attributes."""

    id: str
    op: str
    inputs: List[Tuple[str, np.ndarray, bool]]           # (name, value, is_constant)
    attrs: Dict[str, object] = field(default_factory=dict)
    n_outputs: int = 1
    opset: int = 18
    domain: str = ""
    family: str = ""
    # a reference recipe where ORT lacks the op form ("layout1_via_layout0") or differs
    # from ONNX's own reference evaluator ("onnx")
    reference: Optional[str] = None
    out_shapes: Optional[List[tuple]] = None   # for ops ONNX shape inference cannot infer


def rt(name: str, shape, seed: int = 0, dtype=np.float32, low=None, high=None) -> tuple:
    """A runtime input with seeded values (uniform in [low, high) when given)."""
    rng = np.random.default_rng(seed)
    if low is not None:
        arr = rng.uniform(low, high, size=shape)
    else:
        arr = rng.standard_normal(shape)
    return (name, arr.astype(dtype), False)


def const(name: str, value, dtype=None) -> tuple:
    arr = np.asarray(value, dtype=dtype)
    return (name, arr, True)


def build_model(case: OpCase):
    """(onnx.ModelProto with inferred shapes, feeds) for ``case``."""
    import onnx
    from onnx import helper, numpy_helper

    graph_inputs, inits, feeds, names = [], [], {}, []
    for name, arr, is_const in case.inputs:
        names.append(name)
        if name == "":
            continue
        if is_const:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
            feeds[name] = arr
    outs = [f"y{k}" for k in range(case.n_outputs)]
    node = helper.make_node(case.op, names, outs, name=f"{case.op.lower()}_0",
                            domain=case.domain, **case.attrs)
    out_infos = [helper.make_empty_tensor_value_info(o) for o in outs]
    graph = helper.make_graph([node], case.id, graph_inputs, out_infos, initializer=inits)
    opsets = [helper.make_opsetid("", case.opset)]
    if case.domain:
        opsets.append(helper.make_opsetid(case.domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    out_types = {vi.name: vi for vi in model.graph.value_info}
    for o, shape in zip(outs, case.out_shapes or ()):
        out_types.setdefault(o, helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, shape))
    del model.graph.output[:]
    model.graph.output.extend(out_types[o] for o in outs)
    return model, feeds


def ort_run(model, feeds) -> List[np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def reference_run(case: OpCase, model, feeds) -> List[np.ndarray]:
    """ONNX Runtime's outputs for ``case``; batch-first RNNs (layout=1), which ORT lacks, run
    as the layout-0 op on transposed data, with the outputs transposed back."""
    if case.reference is None:
        return ort_run(model, feeds)
    if case.reference == "onnx":          # ONNX's reference evaluator (the spec's numbers)
        from onnx.reference import ReferenceEvaluator
        return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]
    assert case.reference == "layout1_via_layout0"
    attrs = {k: v for k, v in case.attrs.items() if k != "layout"}
    x_name, x, _ = case.inputs[0]
    inputs = [(x_name, np.ascontiguousarray(x.transpose(1, 0, 2)), False)] + case.inputs[1:]
    twin = OpCase(case.id + "_layout0", case.op, inputs, attrs, case.n_outputs, case.opset)
    twin_model, twin_feeds = build_model(twin)
    outs = ort_run(twin_model, twin_feeds)
    return [outs[0].transpose(2, 0, 1, 3)] + [o.transpose(1, 0, 2) for o in outs[1:]]


def convert_ir(model, path: Path, activation_quant=None, **options):
    """Convert an ONNX ModelProto or onnx_ir.Model with the tflite backend."""
    import onnx_ir as ir
    from converters.backends import BackendOptions
    from converters.tflite.backend import TFLiteBackend
    if not isinstance(model, ir.Model):
        model = ir.from_proto(model)
    return TFLiteBackend().convert(model, Path(path), BackendOptions(**options),
                                   activation_quant=activation_quant)


def litert_run(path, feeds: Dict[str, np.ndarray], threads: int = 1) -> Dict[str, np.ndarray]:
    """Run a .tflite with edgert's LiteRT engine (XNNPACK on)."""
    import edgert
    sess = edgert.load(str(path), engine="litert", threads=threads, check="structure")
    assert sess.engine_name == "litert"
    return sess.run(feeds)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


class _ZooSources:
    """``zoo_source("resnet18")``: each zoo model built and exported once per session."""

    def __init__(self) -> None:
        self._cache = {}

    def __call__(self, name: str):
        if name not in self._cache:
            from converters import zoo
            from converters.frontends import load_source
            res = zoo.TEST_RESOLUTION if zoo.kind(name) in ("image", "segmentation") else None
            self._cache[name] = load_source(zoo.build(name, resolution=res, seed=0))
        return self._cache[name]


@pytest.fixture(scope="session")
def zoo_source():
    return _ZooSources()
