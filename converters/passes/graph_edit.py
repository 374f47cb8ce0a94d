"""Replace one node by a few plain ONNX nodes, with shapes and types on every new value.

The decomposition passes (``decompose.py``, ``decompose_einsum.py``) build their
replacements with an ``Emitter``: it creates the nodes (named after the node they
replace, so an error about one of them points back to it), registers constants as
initializers, gives every new value a shape and dtype (the backends lower by
shape; nothing re-runs shape inference after a backend's own rewrite), and finally
splices the nodes in where the old node was and rewires its readers and the graph
outputs. onnx-ir's ``Tape`` records nodes too, but sets no shapes and appends
initializers by a fixed name, hence this small wrapper.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import onnx_ir as ir


class Emitter:
    def __init__(self, graph: ir.Graph, node: ir.Node, opset: int = 18) -> None:
        self.graph = graph
        self.node = node
        self.opset = opset                   # the default-domain opset the new nodes follow
        self.base = node.name or (node.outputs[0].name if node.outputs else "") or node.op_type
        self.nodes: List[ir.Node] = []
        self._k = 0

    def _name(self, tag: str) -> str:
        self._k += 1
        return f"{self.base}/{tag}_{self._k}"

    def op(self, op_type: str, inputs: Sequence[Optional[ir.Value]], attrs: Optional[dict] = None,
           shape: Optional[Sequence] = None, dtype: Optional[ir.DataType] = None,
           like: Optional[ir.Value] = None) -> ir.Value:
        """A new node's output. Shape and dtype: given, else those of ``like``, else of the
        first input (right for elementwise ops)."""
        ref = like if like is not None else inputs[0]
        node = ir.Node("", op_type, list(inputs),
                       attributes=ir.convenience.convert_attributes(attrs or {}),
                       name=self._name(op_type))
        out = node.outputs[0]
        out.name = node.name.replace("/", "_")
        out.dtype = dtype if dtype is not None else ref.dtype
        if shape is not None:
            out.shape = ir.Shape(list(shape))
        elif ref is not None and ref.shape is not None:
            out.shape = ir.Shape(list(ref.shape))
        self.nodes.append(node)
        return out

    def const(self, value, dtype=None, tag: str = "c") -> ir.Value:
        """A constant as an initializer (``dtype``: numpy dtype; default: float32)."""
        arr = np.asarray(value, dtype=dtype or np.float32)
        name = self._name(tag).replace("/", "_")
        while name in self.graph.initializers:
            name += "_"
        v = ir.Value(name=name, const_value=ir.tensor(arr, name=name))
        v.shape, v.dtype = ir.Shape(list(arr.shape)), ir.DataType.from_numpy(arr.dtype)
        self.graph.register_initializer(v)
        return v

    def like(self, value, ref: ir.Value, tag: str = "c") -> ir.Value:
        """A scalar constant of ``ref``'s element type."""
        dtype = ref.dtype.numpy() if ref.dtype is not None else np.float32
        return self.const(np.asarray(value, dtype=dtype), dtype=dtype, tag=tag)

    def replace(self, outputs: Sequence[ir.Value]) -> None:
        """Put the new nodes where the old node was; ``outputs`` take over its outputs
        (names, readers, graph outputs)."""
        old = self.node
        self.graph.insert_before(old, self.nodes)
        for old_out, new_out in zip(old.outputs, outputs):
            if old_out.shape is not None:
                new_out.shape = old_out.shape
            if old_out.dtype is not None:
                new_out.dtype = old_out.dtype
            ir.convenience.replace_all_uses_with(old_out, new_out, replace_graph_outputs=True)
            name = old_out.name
            old_out.name = None
            new_out.name = name
        self.graph.remove(old, safe=True)
