"""The TFLite subgraph being built: tensors, constant buffers and operators.

Lowerings only ever call ``tensor``, ``const`` and ``op``; ``writer.py`` turns the
result into a flatbuffer. Tensors are stored in their *physical* (stored) shape;
a dynamic dim is written as 1 in ``shape`` and -1 in ``shape_signature``, which
is how LiteRT marks resizable dims.

Two hooks live here because every constant and every tensor passes through them:

* ``quant=`` takes a ``QuantizationParametersT`` (scales, zero points, quantized
  dimension). Dynamic-range weights use it today; full-int8 activations will set
  it on ``tensor`` too (see docs/TFLITE.md).
* ``sparsity=`` takes a ``SparsityParametersT`` (traversal order, block map, dim
  metadata) for a constant already encoded in TFLite's sparse format.

Control flow (IF's branches, WHILE's condition and body) lives in further subgraphs:
``child()`` makes one that shares the model's buffers, with its own tensors and
operators, and returns it with its subgraph index; ``subgraphs`` on the main one
lists them all, in index order, for the writer.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from converters.tflite.schema import options_type, schema, tensor_type


@dataclass
class OpRecord:
    """One operator as lowered: what versioning and op counts need to know."""

    builtin: str
    inputs: List[int]
    outputs: List[int]
    options: Any = None
    ext: Dict[str, Any] = field(default_factory=dict)   # facts for op versioning


class SubgraphBuilder:
    def __init__(self, parent: Optional["SubgraphBuilder"] = None, name: str = "main") -> None:
        s = schema()
        self.name = name
        self.tensors: List[Any] = []
        if parent is None:
            self.buffers: List[Any] = [s.BufferT()]          # buffer 0: the empty buffer
            self.buffer_data: List[Optional[bytes]] = [None]
            self.subgraphs: List["SubgraphBuilder"] = [self]
        else:           # buffers are the model's: shared by every subgraph
            self.buffers, self.buffer_data = parent.buffers, parent.buffer_data
            self.subgraphs = parent.subgraphs
            self.subgraphs.append(self)
        self.index = len(self.subgraphs) - 1
        self.ops: List[OpRecord] = []
        self.inputs: List[int] = []
        self.outputs: List[int] = []
        self._names: Dict[str, int] = {}
        self._const_cache: Dict[tuple, int] = {}

    def child(self, name: str) -> "SubgraphBuilder":
        """A new subgraph of the same model (``.index`` is what IF/WHILE options name)."""
        return SubgraphBuilder(self, name)

    # -- tensors ------------------------------------------------------------------------
    def unique_name(self, name: str) -> str:
        base = name or "t"
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def tensor(self, name: str, shape: Sequence[Optional[int]], dtype: Any,
               quant: Any = None, buffer: int = 0, sparsity: Any = None,
               is_variable: bool = False) -> int:
        """A new tensor; ``None`` dims are dynamic. Returns its index."""
        t = schema().TensorT()
        t.name = self.unique_name(name)
        t.shape = [1 if d is None else int(d) for d in shape]
        if any(d is None for d in shape):
            t.shapeSignature = [-1 if d is None else int(d) for d in shape]
        t.type = tensor_type(dtype)
        t.buffer = buffer
        t.quantization = quant
        t.sparsity = sparsity
        t.isVariable = is_variable
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, array: np.ndarray, quant: Any = None,
              sparsity: Any = None, shape: Optional[Sequence[int]] = None) -> int:
        """A constant tensor holding ``array`` (identical small constants are shared).

        ``shape`` overrides the array's shape (a sparse tensor's dense shape).
        """
        array = np.require(array, requirements="C")     # (ascontiguousarray makes 0-d 1-d)
        data = array.tobytes()
        key = None
        if quant is None and sparsity is None and array.size <= 64:
            key = (array.dtype.str, array.shape, hashlib.sha1(data).hexdigest())
            if key in self._const_cache:
                return self._const_cache[key]
        buf = schema().BufferT()
        self.buffers.append(buf)
        self.buffer_data.append(data)
        idx = self.tensor(name, list(array.shape if shape is None else shape), array.dtype,
                          quant=quant, buffer=len(self.buffers) - 1, sparsity=sparsity)
        if key is not None:
            self._const_cache[key] = idx
        return idx

    def is_const(self, index: int) -> bool:
        return self.tensors[index].buffer != 0 and not self.tensors[index].isVariable

    def shape(self, index: int) -> List[Optional[int]]:
        t = self.tensors[index]
        sig = t.shapeSignature
        return [None if sig is not None and sig[k] == -1 else d for k, d in enumerate(t.shape)]

    def dtype_code(self, index: int) -> int:
        return self.tensors[index].type

    # -- operators ----------------------------------------------------------------------
    def op(self, builtin: str, inputs: Sequence[int], outputs: Sequence[int],
           options: Any = None, **ext: Any) -> OpRecord:
        """Append an operator; ``-1`` marks an omitted optional input."""
        rec = OpRecord(builtin, list(inputs), list(outputs), options, dict(ext))
        self.ops.append(rec)
        return rec

    def remove_dead_ops(self) -> int:
        """Drop operators whose outputs nobody reads (a RESHAPE made redundant by a view
        taken directly from the rank-4 tensor it came from). Our ops have no side effects.
        Returns how many were removed."""
        needed = set(self.outputs)
        keep: List[OpRecord] = []
        for rec in reversed(self.ops):
            if any(o in needed for o in rec.outputs):
                keep.append(rec)
                needed.update(i for i in rec.inputs if i >= 0)
        removed = len(self.ops) - len(keep)
        self.ops = keep[::-1]
        return removed

    def op_counts(self, every_subgraph: bool = True) -> Dict[str, int]:
        """Builtin -> operator count (over every subgraph of the model, from the main one)."""
        counts: Dict[str, int] = {}
        graphs = self.subgraphs if every_subgraph and self.index == 0 else [self]
        for sg in graphs:
            for rec in sg.ops:
                counts[rec.builtin] = counts.get(rec.builtin, 0) + 1
        return counts


def options_tag(obj: Any) -> int:
    return 0 if obj is None else options_type(obj)
