"""What a lowering sees: the ONNX node's values bound to TFLite tensors, in the layout
the plan gave them.

``ctx.input(node, i)`` returns input ``i`` already in the layout the plan
requires of this node, inserting the TRANSPOSE (or, when only size-1 dims move, a
RESHAPE) once per value and layout. ``ctx.output(node)`` creates the result
tensor in the value's planned layout. ``ctx.weight`` stores a constant through
the precision policy. ``ctx.fuse_activation`` folds a following Relu/Relu6/Clip
into the op's ``fused_activation_function``. Lowerings never touch layouts,
names or buffers themselves.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from converters.layout import LayoutPlan
from converters.layout.graph import attr, const_of, is_const, shape_of
from converters.layout.perm import Perm, identity, permute_array, physical_shape, transpose_between
from converters.tflite.builder import SubgraphBuilder
from converters.tflite.precision import WeightPolicy
from converters.tflite.quant import ActivationQuant, quant_params
from converters.tflite.schema import activation, options
from converters.errors import ConversionError
from edgert.fused_activations import fused_code
from edgert.op_registry import is_default_domain


def np_dtype(value) -> np.dtype:
    """numpy dtype of an ONNX value (float32 when unknown)."""
    if value is None or value.dtype is None:
        return np.dtype(np.float32)
    return np.dtype(value.dtype.numpy())


class LoweringContext:
    def __init__(self, sg: SubgraphBuilder, plan: LayoutPlan, policy: WeightPolicy,
                 quant: Optional[ActivationQuant] = None) -> None:
        self.sg = sg
        self.plan = plan
        self.policy = policy
        self.quant = quant or ActivationQuant()
        self._bound: Dict[object, Tuple[int, Perm]] = {}
        self._converted: Dict[Tuple[object, Perm], int] = {}
        self._consts: Dict[object, np.ndarray] = {}
        self._weights: Dict[tuple, Tuple[int, dict]] = {}
        self._views: Dict[Tuple[int, Tuple], int] = {}     # (tensor, shape) -> its reshape
        self.consumed: set = set()          # ids of nodes folded into an earlier op
        self.notes: List[str] = []
        self.opset: Optional[int] = None    # the model's; set for subgraphs (control_flow.py)

    # -- values -------------------------------------------------------------------------
    def shape(self, value) -> List[Optional[int]]:
        s = shape_of(value)
        if s is None:
            raise ConversionError(f"tflite: the shape of {value.name!r} is unknown; run shape "
                                  "inference before converting")
        return s

    def perm(self, value) -> Perm:
        if value in self._bound:
            return self._bound[value][1]
        p = self.plan.perm(value)
        return p if p is not None else identity(len(self.shape(value)))

    def stored_shape(self, value, perm: Optional[Perm] = None) -> List[Optional[int]]:
        return physical_shape(self.shape(value), perm or self.perm(value))

    def const(self, value) -> Optional[np.ndarray]:
        """The constant payload of ``value`` (logical layout), or ``None``."""
        if value is None:
            return None
        if value not in self._consts:
            c = const_of(value)
            if c is None:
                return None
            self._consts[value] = c
        return self._consts[value]

    def is_const(self, value) -> bool:
        return is_const(value)

    # -- tensors ------------------------------------------------------------------------
    def bind(self, value, index: int, perm: Optional[Perm] = None) -> None:
        """Say that ``value`` lives in tensor ``index`` (stored as ``perm``)."""
        self._bound[value] = (index, tuple(perm) if perm is not None else self.perm(value))

    def tensor_of(self, value, perm: Optional[Perm] = None, keep_int64: bool = False) -> int:
        """``value``'s tensor stored as ``perm`` (default: as it is), converting once if needed.

        int64 constants are written int32 (what TFLite's shape-like inputs take), unless
        ``keep_int64``: an operand of an op whose other input is an int64 tensor."""
        if value not in self._bound:
            c = self.const(value)
            if c is None:
                raise ConversionError(f"tflite: value {value.name!r} used before it is computed")
            arr = c.astype(np.int32) if c.dtype == np.int64 and not keep_int64 else c
            p = tuple(perm) if perm is not None else identity(arr.ndim)
            key = (value, p) if arr.dtype != np.int64 else (value, p, "int64")
            if key not in self._converted:
                stored = permute_array(arr, p) if arr.ndim else arr
                self._converted[key] = self.sg.const(value.name, stored)
            return self._converted[key]
        idx, have = self._bound[value]
        if perm is None or tuple(perm) == have:
            return idx
        key = (value, tuple(perm))
        if key not in self._converted:
            self._converted[key] = self._convert(value, idx, have, tuple(perm))
        return self._converted[key]

    def _convert(self, value, idx: int, have: Perm, want: Perm) -> int:
        shape = self.shape(value)
        out = self.sg.tensor(f"{value.name}_{''.join(map(str, want))}",
                             physical_shape(shape, want), np_dtype(value))
        self.permute(idx, physical_shape(shape, have), transpose_between(have, want), out)
        return out

    def permute(self, src: int, src_shape: Sequence[Optional[int]], q: Sequence[int],
                dst: int) -> None:
        """``dst = transpose(src, q)``; a RESHAPE when only size-1 dims move."""
        dst_shape = [src_shape[k] for k in q]
        moved = [k for k in q if src_shape[k] != 1]
        if moved == sorted(moved) and sum(d is None for d in dst_shape) <= 1:
            self.reshape(src, dst, dst_shape)
            return
        perm_t = self.sg.const("perm", np.array(q, dtype=np.int32))
        self.sg.op("TRANSPOSE", [src, perm_t], [dst])

    def input(self, node, i: int) -> int:
        """Input ``i`` of ``node`` in the layout the plan requires of it (-1 if absent)."""
        v = node.inputs[i] if i < len(node.inputs) else None
        if v is None:
            return -1
        return self.tensor_of(v, self.plan.required_perm(node, i))

    def input_perm(self, node, i: int) -> Perm:
        v = node.inputs[i]
        p = self.plan.required_perm(node, i)
        return tuple(p) if p is not None else self.perm(v)

    def output(self, node, i: int = 0, perm: Optional[Perm] = None, value=None,
               dtype=None) -> int:
        """A new tensor for ``node.outputs[i]`` (or ``value``) in its planned layout.

        The full-int8 hook acts here: when ``self.quant`` says the value is quantized, the
        tensor is int8 with that scale and zero point, and int8 kernels follow from it.
        """
        v = value if value is not None else node.outputs[i]
        p = tuple(perm) if perm is not None else self.perm(v)
        q = self.quant.of(v.name)
        if q is not None:
            idx = self.sg.tensor(v.name, physical_shape(self.shape(v), p), np.dtype(q.dtype),
                                 quant=quant_params([q.scale], [q.zero_point]))
            self._bound[v] = (idx, p)
            return idx
        idx = self.sg.tensor(v.name, physical_shape(self.shape(v), p),
                             dtype if dtype is not None else np_dtype(v))
        self._bound[v] = (idx, p)
        return idx

    def tmp(self, name: str, shape: Sequence[Optional[int]], dtype=np.float32) -> int:
        return self.sg.tensor(name, shape, dtype)

    def const_tensor(self, name: str, array) -> int:
        """A plain constant (shapes, axes, small operands), never precision-converted."""
        return self.sg.const(name, np.asarray(array))

    def weight(self, name: str, array: np.ndarray, role: str) -> Tuple[int, dict]:
        """A weight stored through the precision policy: (tensor index, facts for versioning)."""
        array = np.ascontiguousarray(array, dtype=np.float32 if array.dtype == np.float64
                                     else array.dtype)
        return self.policy.store(self.sg, name, array, role)

    def emit(self, builtin: str, inputs: Sequence[int], outputs: Sequence[int],
             options=None, **ext):
        return self.sg.op(builtin, inputs, outputs, options, **ext)

    def view(self, src: int, stored_shape: Sequence[Optional[int]], name: str = "") -> int:
        """Tensor ``src`` reshaped to ``stored_shape`` (one RESHAPE per tensor and shape,
        none when an op already wrote that view: see ``add_view``)."""
        key = (src, tuple(stored_shape))
        if key not in self._views:
            t = self.sg.tensors[src]
            dst = self.sg.tensor(name or f"{t.name}_view", stored_shape, np.float32,
                                 quant=t.quantization)
            self.sg.tensors[dst].type = t.type
            self.reshape(src, dst, stored_shape)
            self._views[key] = dst
        return self._views[key]

    def add_view(self, tensor: int, stored_shape: Sequence[Optional[int]], view: int) -> None:
        """Say that ``view`` holds ``tensor``'s data in ``stored_shape`` (a rank-4 result a
        RESHAPE turned into ``tensor``), so a later reader of that shape takes ``view``
        directly; the RESHAPE is dropped when nobody else reads ``tensor``."""
        self._views[(tensor, tuple(stored_shape))] = view

    def reshape(self, src: int, dst: int, stored_shape: Sequence[Optional[int]]) -> None:
        new_shape = np.array([-1 if d is None else int(d) for d in stored_shape], dtype=np.int32)
        shape_t = self.sg.const("shape", new_shape)
        self.sg.op("RESHAPE", [src, shape_t], [dst],
                   options("Reshape", newShape=[int(d) for d in new_shape]))

    # -- fusion -------------------------------------------------------------------------
    def fuse_activation(self, node, out_index: int = 0) -> Tuple[int, object]:
        """(ActivationFunctionType, value the op's output tensor stands for).

        When ``node``'s output feeds exactly one fusable activation (and is no graph
        output), that activation is folded in and marked consumed.
        """
        v = node.outputs[out_index]
        if v.is_graph_output() or len(v.uses()) != 1:
            return activation("NONE"), v
        nxt = next(iter(v.uses())).node
        if not is_default_domain(nxt.domain) or nxt.inputs[0] is not v:
            return activation("NONE"), v
        code = fused_activation_code(nxt, self)
        if code is None:
            return activation("NONE"), v
        self.consumed.add(id(nxt))
        return activation(code), nxt.outputs[0]


def clip_bounds(node, ctx) -> Tuple[Optional[float], Optional[float]]:
    """Clip's (min, max): attributes before opset 11, constant inputs after."""
    lo, hi = attr(node, "min", None), attr(node, "max", None)
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        c = ctx.const(node.inputs[1])
        lo = None if c is None else float(c)
        if c is None:
            return float("nan"), float("nan")
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        c = ctx.const(node.inputs[2])
        if c is None:
            return float("nan"), float("nan")
        hi = float(c)
    return lo, hi


def fused_activation_code(node, ctx) -> Optional[str]:
    """The ActivationFunctionType name ``node`` amounts to, if it is one."""
    if node.op_type == "Clip":
        return fused_code("Clip", *clip_bounds(node, ctx))
    return fused_code(node.op_type)
