"""Replace one node by a few plain ONNX nodes, with shapes and types on every new value.

The decomposition passes (``decompose*.py``) build their replacements with an
``Emitter``: it creates the nodes (named after the node they replace, so an error
about one of them points back to it), registers constants as initializers, gives
every new value a shape and dtype (ONNX's own shape inference for the op at the
model's opset, unless the caller says; the backends lower by shape and nothing
re-runs shape inference after a backend's own rewrite), evaluates a new node whose
inputs are all constants at once (ONNX's reference evaluator: a target refuses ops
on constants only, "run constant folding first", and no folding runs after a
backend's rewrite), and finally splices the nodes in where the old node was and
rewires its readers and the graph outputs. onnx-ir's ``Tape`` records nodes too,
but sets no shapes and appends initializers by a fixed name, hence this wrapper.

The opset-aware helpers (``slice``, ``reduce``, ``squeeze``, ...) write each op in the
form the model's opset wants (axes as an attribute or an input), so a decomposition
is written once for every opset.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx_ir as ir

Dim = Optional[int]


def _type_proto(v: ir.Value):
    from onnx import helper

    elem = int(v.dtype) if v.dtype is not None else 0
    if v.shape is None:
        return helper.make_tensor_type_proto(elem, None)
    dims = []
    for d in v.shape:
        if isinstance(d, int):
            dims.append(d)
        else:
            name = getattr(d, "value", None)
            dims.append(name if isinstance(name, str) else None)
    return helper.make_tensor_type_proto(elem, dims)


def _const_array(v: Optional[ir.Value]) -> Optional[np.ndarray]:
    if v is None or v.const_value is None:
        return None
    return np.asarray(v.const_value.numpy())


class Emitter:
    def __init__(self, graph: ir.Graph, node: ir.Node, opset: int = 18,
                 fold: bool = True) -> None:
        self.graph = graph
        self.node = node
        self.opset = opset                   # the default-domain opset the new nodes follow
        self.fold = fold                     # evaluate nodes whose inputs are all constants
        self.base = node.name or (node.outputs[0].name if node.outputs else "") or node.op_type
        self.nodes: List[ir.Node] = []
        self._consts: set = set()           # ids of the initializers this emitter made
        self._k = 0

    def _name(self, tag: str) -> str:
        self._k += 1
        return f"{self.base}/{tag}_{self._k}"

    # -- nodes ----------------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[Optional[ir.Value]], attrs: Optional[dict] = None,
           shape: Optional[Sequence] = None, dtype: Optional[ir.DataType] = None,
           like: Optional[ir.Value] = None, outputs: int = 1, fold: bool = True):
        """A new node's output (a list of them when ``outputs`` > 1). Shape and dtype:
        given, else those of ``like``, else ONNX's shape inference, else the first input's.
        A node whose inputs are all constants becomes a constant (evaluated now)."""
        attrs = attrs or {}
        if self.fold and fold and outputs == 1 and inputs and all(
                v is None or v.const_value is not None for v in inputs):
            folded = self._evaluate(op_type, inputs, attrs)
            if folded is not None:
                return folded
        node = ir.Node("", op_type, list(inputs),
                       attributes=ir.convenience.convert_attributes(attrs),
                       name=self._name(op_type), num_outputs=outputs)
        for k, out in enumerate(node.outputs):
            out.name = (node.name + (f"_{k}" if k else "")).replace("/", "_")
        inferred = self._infer(node) if shape is None and like is None else {}
        ref = like if like is not None else next((v for v in inputs if v is not None), None)
        for k, out in enumerate(node.outputs):
            got = inferred.get(k)
            out.dtype = dtype if dtype is not None else (
                got[0] if got is not None and got[0] is not None else
                (ref.dtype if ref is not None else None))
            if shape is not None:
                out.shape = ir.Shape(list(shape))
            elif like is not None and like.shape is not None:
                out.shape = ir.Shape(list(like.shape))
            elif got is not None and got[1] is not None:
                out.shape = got[1]
            elif ref is not None and ref.shape is not None:
                out.shape = ir.Shape(list(ref.shape))
        self.nodes.append(node)
        return node.outputs[0] if outputs == 1 else list(node.outputs)

    def _infer(self, node: ir.Node) -> Dict[int, tuple]:
        """{output index: (dtype, shape)} from ONNX's shape inference of ``node`` alone."""
        import onnx
        from onnx import defs, numpy_helper

        try:
            schema = defs.get_schema(node.op_type, self.opset, "")
        except Exception:           # an op this opset does not have: the caller's shapes
            return {}
        proto = ir.serde.serialize_node(node)
        types, data = {}, {}
        for v, name in zip(node.inputs, proto.input):
            if v is None or not name:
                continue
            types[name] = _type_proto(v)
            c = _const_array(v)
            if c is not None and c.size <= 1024:
                data[name] = numpy_helper.from_array(c, name)
        try:
            result = onnx.shape_inference.infer_node_outputs(schema, proto, types, data)
        except Exception:
            return {}
        out = {}
        for k, name in enumerate(proto.output):
            t = result.get(name)
            if t is None or not t.HasField("tensor_type"):
                continue
            tt = t.tensor_type
            dtype = ir.DataType(tt.elem_type) if tt.elem_type else None
            shape = None
            if tt.HasField("shape"):
                shape = ir.Shape([d.dim_value if d.HasField("dim_value") else
                                  (d.dim_param or None) for d in tt.shape.dim])
            out[k] = (dtype, shape)
        return out

    def _evaluate(self, op_type: str, inputs, attrs) -> Optional[ir.Value]:
        """The node's output computed now (ONNX's reference evaluator), as a constant."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        names = [f"i{k}" if v is not None else "" for k, v in enumerate(inputs)]
        proto = helper.make_node(op_type, names, ["y"], **attrs)
        feeds = {n: _const_array(v) for n, v in zip(names, inputs) if v is not None}
        try:
            (result,) = ReferenceEvaluator(proto, opsets={"": self.opset}).run(None, feeds)
        except Exception:         # not evaluable here: emit the node and let the target say
            return None
        return self.const(np.asarray(result), np.asarray(result).dtype, op_type.lower())

    # -- constants ------------------------------------------------------------------------
    def const(self, value, dtype=None, tag: str = "c") -> ir.Value:
        """A constant as an initializer (``dtype``: numpy dtype; default: float32)."""
        arr = np.asarray(value, dtype=dtype or np.float32)
        name = self._name(tag).replace("/", "_")
        while name in self.graph.initializers:
            name += "_"
        v = ir.Value(name=name, const_value=ir.tensor(arr, name=name))
        v.shape, v.dtype = ir.Shape(list(arr.shape)), ir.DataType.from_numpy(arr.dtype)
        self.graph.register_initializer(v)
        self._consts.add(id(v))
        return v

    def like(self, value, ref: ir.Value, tag: str = "c") -> ir.Value:
        """A constant of ``ref``'s element type (a scalar unless ``value`` has dims)."""
        dtype = ref.dtype.numpy() if ref.dtype is not None else np.float32
        return self.const(np.asarray(value, dtype=dtype), dtype=dtype, tag=tag)

    def ints(self, values, tag: str = "i") -> ir.Value:
        """An int64 constant (shapes, axes, indices)."""
        return self.const(np.asarray(values, np.int64), np.int64, tag)

    # -- opset-aware helpers ----------------------------------------------------------------
    def reshape(self, x: ir.Value, shape: Sequence[int]) -> ir.Value:
        return self.op("Reshape", [x, self.ints(list(shape), "shape")])

    def transpose(self, x: ir.Value, perm: Sequence[int]) -> ir.Value:
        if list(perm) == list(range(len(perm))):
            return x
        return self.op("Transpose", [x], {"perm": list(perm)})

    def unsqueeze(self, x: ir.Value, axes: Sequence[int]) -> ir.Value:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.ints(list(axes), "axes")])
        return self.op("Unsqueeze", [x], {"axes": list(axes)})

    def squeeze(self, x: ir.Value, axes: Sequence[int]) -> ir.Value:
        if self.opset >= 13:
            return self.op("Squeeze", [x, self.ints(list(axes), "axes")])
        return self.op("Squeeze", [x], {"axes": list(axes)})

    def slice(self, x: ir.Value, starts: Sequence[int], ends: Sequence[int],
              axes: Sequence[int], steps: Optional[Sequence[int]] = None) -> ir.Value:
        if self.opset >= 10:
            ins = [x, self.ints(starts, "starts"), self.ints(ends, "ends"),
                   self.ints(axes, "axes")]
            if steps is not None and any(s != 1 for s in steps):
                ins.append(self.ints(steps, "steps"))
            return self.op("Slice", ins)
        if steps is not None and any(s != 1 for s in steps):
            raise ValueError("Slice with steps needs opset 10")
        return self.op("Slice", [x], {"starts": list(starts), "ends": list(ends),
                                      "axes": list(axes)})

    def reduce(self, op_type: str, x: ir.Value, axes: Optional[Sequence[int]],
               keepdims: int = 1) -> ir.Value:
        """``op_type`` (ReduceSum, ReduceMean, ...) over ``axes`` (None: all)."""
        attrs: dict = {"keepdims": keepdims}
        ins = [x]
        if axes is not None:
            if self.opset >= 18 or (op_type == "ReduceSum" and self.opset >= 13):
                ins.append(self.ints(list(axes), "axes"))
            else:
                attrs["axes"] = list(axes)
        return self.op(op_type, ins, attrs)

    def split(self, x: ir.Value, axis: int, sizes: Sequence[int]) -> List[ir.Value]:
        """``x`` cut along ``axis`` into ``sizes`` (Slices: every opset, no Split forms)."""
        out, start = [], 0
        for s in sizes:
            out.append(self.slice(x, [start], [start + s], [axis]))
            start += s
        return out

    def concat(self, xs: Sequence[ir.Value], axis: int) -> ir.Value:
        return xs[0] if len(xs) == 1 else self.op("Concat", list(xs), {"axis": axis})

    def cast(self, x: ir.Value, to: ir.DataType) -> ir.Value:
        if x.dtype == to:
            return x
        return self.op("Cast", [x], {"to": int(to)})

    def softmax(self, x: ir.Value, axis: int = -1) -> ir.Value:
        """Softmax over one axis (before opset 13 only the last axis is one axis)."""
        rank = len(x.shape)
        if self.opset < 13 and axis % rank != rank - 1:
            raise ValueError("Softmax over a middle axis needs opset 13")
        return self.op("Softmax", [x], {"axis": axis % rank if self.opset >= 13 else rank - 1})

    # -- splicing ---------------------------------------------------------------------------
    def replace(self, outputs: Sequence[Optional[ir.Value]]) -> None:
        """Put the new nodes where the old node was; ``outputs`` take over its outputs
        (names, readers, graph outputs). A ``None`` output must be unused."""
        old = self.node
        made = {id(n) for n in self.nodes}
        fixed = []
        for new_out in outputs:     # a value the graph had already: an Identity takes the name
            if new_out is not None and id(new_out) not in self._consts and (
                    new_out.producer() is None or id(new_out.producer()) not in made):
                new_out = self.op("Identity", [new_out], fold=False)
            fixed.append(new_out)
        self.graph.insert_before(old, self.nodes)
        for old_out, new_out in zip(old.outputs, fixed):
            if new_out is None:
                continue
            if old_out.shape is not None:
                new_out.shape = old_out.shape
            if old_out.dtype is not None:
                new_out.dtype = old_out.dtype
            ir.convenience.replace_all_uses_with(old_out, new_out, replace_graph_outputs=True)
            name = old_out.name
            old_out.name = None
            new_out.name = name
        self.graph.remove(old, safe=True)
