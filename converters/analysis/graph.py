"""The ONNX graph as the cost functions see it: nodes with shaped, typed tensors.

Shapes come from ONNX's own shape inference (with data propagation, so shapes
computed by Shape/Gather/Concat chains resolve). Dynamic input dims are fixed
first, from the caller's shapes or to 1, because FLOPs need numbers.

Constant folding is modelled, not performed: a node whose inputs are all
constants (initializers, Constant outputs, or outputs of such nodes) is folded
by every engine at load time, so it costs nothing and its outputs count as
weights. That is what makes a QDQ model's DequantizeLinear(weight) a weight of
the Conv after it rather than an activation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgert.errors import InputError, ModelFileError

Shape = Optional[Tuple[int, ...]]


@dataclass(frozen=True)
class TensorView:
    name: str
    shape: Shape               # None when inference could not tell
    dtype: np.dtype
    is_weight: bool

    @property
    def numel(self) -> Optional[int]:
        if self.shape is None:
            return None
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


@dataclass
class NodeView:
    name: str
    op_type: str
    domain: str
    attrs: Dict[str, Any]
    inputs: List[Optional[TensorView]]       # None for an omitted optional input
    outputs: List[Optional[TensorView]]
    folded: bool = False                     # all inputs constant: folded at load time

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def input(self, i: int) -> Optional[TensorView]:
        return self.inputs[i] if i < len(self.inputs) else None

    def output(self, i: int = 0) -> Optional[TensorView]:
        return self.outputs[i] if i < len(self.outputs) else None


@dataclass
class Graph:
    name: str
    nodes: List[NodeView]
    input_shapes: Dict[str, Tuple[int, ...]]
    graph_outputs: List[str]
    weights: List[TensorView]            # initializers and constants, each once
    notes: List[str] = field(default_factory=list)


def load_model(model: Any):
    """An ``onnx.ModelProto`` from a path or a proto (weights need not be loaded)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = str(model)
    try:
        return onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except Exception as exc:  # onnx raises DecodeError and others for damaged files
        raise ModelFileError(f"{path}: not a readable ONNX model ({exc})") from None


def fix_input_shapes(model, shapes: Optional[Mapping[str, Sequence[int]]] = None):
    """A copy of ``model`` whose graph inputs have fixed dims: ``shapes`` where given,
    1 for any other dynamic dim. Returns (model, {input: shape}, notes)."""
    import onnx

    shapes = dict(shapes or {})
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name for i in model.graph.initializer}
    fixed: Dict[str, Tuple[int, ...]] = {}
    notes: List[str] = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if vi.name in shapes:
            want = [int(d) for d in shapes.pop(vi.name)]
            if len(want) != len(dims):
                raise InputError(f"input {vi.name!r} has rank {len(dims)}, shape given has "
                                 f"rank {len(want)}: {want}")
            for d, v in zip(dims, want):
                d.Clear()
                d.dim_value = v
        else:
            for i, d in enumerate(dims):
                if not d.HasField("dim_value") or d.dim_value <= 0:
                    label = d.dim_param or "?"
                    d.Clear()
                    d.dim_value = 1
                    notes.append(f"input {vi.name!r} dim {i} ({label}) is dynamic: taken as 1")
        fixed[vi.name] = tuple(int(d.dim_value) for d in dims)
    if shapes:
        names = [vi.name for vi in model.graph.input if vi.name not in inits]
        raise InputError(f"no model input named {', '.join(shapes)}; inputs: {', '.join(names)}")
    return model, fixed, notes


def _np_dtype(elem_type: int) -> np.dtype:
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return np.dtype(np.float32)   # bfloat16/float8 and friends: priced as floats


def _value_infos(model) -> Dict[str, Tuple[Shape, np.dtype]]:
    out: Dict[str, Tuple[Shape, np.dtype]] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.elem_type:
            continue
        shape: Shape = None
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            shape = None if any(d < 0 for d in dims) else tuple(int(d) for d in dims)
        out[vi.name] = (shape, _np_dtype(tt.elem_type))
    for init in g.initializer:
        out[init.name] = (tuple(int(d) for d in init.dims), _np_dtype(init.data_type))
    return out


def build_graph(model: Any, shapes: Optional[Mapping[str, Sequence[int]]] = None) -> Graph:
    """Load, fix input dims, infer shapes, and wrap every node of the main graph."""
    from onnx import helper, shape_inference

    proto = load_model(model)
    proto, fixed, notes = fix_input_shapes(proto, shapes)
    try:
        proto = shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception as exc:  # inference is best effort: unknown shapes are noted per layer
        notes.append(f"ONNX shape inference failed ({exc}); costs use the shapes stored in the file")
    info = _value_infos(proto)
    const = {i.name for i in proto.graph.initializer}
    weights: List[TensorView] = []
    nodes: List[NodeView] = []
    for idx, n in enumerate(proto.graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        ins = [None if not name else _view(name, info, name in const) for name in n.input]
        folded = n.op_type == "Constant" or (
            bool([t for t in ins if t is not None]) and all(t.is_weight for t in ins if t))
        if folded:
            const.update(o for o in n.output if o)
        outs = [None if not name else _view(name, info, folded) for name in n.output]
        if n.op_type == "Constant" and outs and outs[0] is not None and outs[0].shape is None:
            outs[0] = _constant_view(n, outs[0])
        nodes.append(NodeView(n.name or f"{n.op_type}_{idx}", n.op_type, n.domain, attrs,
                              ins, outs, folded))
    used = {t.name for nd in nodes if not nd.folded for t in nd.inputs if t and t.is_weight}
    for name in sorted(used):
        shape, dtype = info.get(name, (None, np.dtype(np.float32)))
        weights.append(TensorView(name, shape, dtype, True))
    return Graph(proto.graph.name or "model", nodes, fixed,
                 [o.name for o in proto.graph.output], weights, notes)


def _view(name: str, info: Mapping[str, Tuple[Shape, np.dtype]], is_weight: bool) -> TensorView:
    shape, dtype = info.get(name, (None, np.dtype(np.float32)))
    return TensorView(name, shape, dtype, is_weight)


def _constant_view(node, view: TensorView) -> TensorView:
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            arr = numpy_helper.to_array(a.t)
            return TensorView(view.name, tuple(arr.shape), arr.dtype, True)
    return view
