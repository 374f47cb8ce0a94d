"""Operator versions, following LiteRT's rules (tensorflow/lite/tools/versioning/op_version.cc).

An interpreter refuses an op whose version it does not know, and picks kernels
by version, so each op must carry the version those rules give for its input and
output types and options. Only the branches for what our lowerings can emit are
transcribed; anything else is version 1, as in the source. The OperatorCode of a
builtin gets the highest version among its uses (``UpdateOpVersion`` does the same).
"""
from __future__ import annotations

from typing import Callable, Dict, List

from converters.tflite.builder import OpRecord, SubgraphBuilder
from converters.tflite.schema import BUILTIN_DOMAIN
from edgert.op_registry import OpRegistry

F32, F16, I32, U8, I64, BOOL, I16, I8, I4 = 0, 1, 2, 3, 4, 6, 7, 9, 17

_RULES: OpRegistry[Callable[["_Sig"], int]] = OpRegistry("TFLite op version rule",
                                                         domain=BUILTIN_DOMAIN)


class _Sig:
    """The op signature the rules read: input/output types and ranks, options, extras."""

    def __init__(self, rec: OpRecord, sg: SubgraphBuilder) -> None:
        self.rec = rec
        self.opt = rec.options
        self.ext = rec.ext
        self.in_types = [sg.tensors[i].type if i >= 0 else -1 for i in rec.inputs]
        self.in_dims = [len(sg.tensors[i].shape) if i >= 0 else 0 for i in rec.inputs]
        self.in_shapes = [list(sg.tensors[i].shape) if i >= 0 else [] for i in rec.inputs]
        self.out_types = [sg.tensors[i].type for i in rec.outputs]
        self.n_inputs = len(rec.inputs)

    def t(self, i: int) -> int:
        return self.in_types[i] if i < len(self.in_types) else -1

    def hybrid(self, w: int = 1) -> bool:
        return self.t(0) == F32 and self.t(w) == I8 and self.out_types[0] == F32

    def broadcast_over4(self) -> bool:
        return (len(self.in_shapes) >= 2 and self.in_shapes[0] != self.in_shapes[1]
                and max(self.in_dims) > 4)


def rule(*builtins: str):
    """Register the decorated function as the version rule of ``builtins``."""
    return _RULES.register(*builtins)


def op_version(rec: OpRecord, sg: SubgraphBuilder) -> int:
    fn = _RULES.lookup(rec.builtin)
    return fn(_Sig(rec, sg)) if fn else 1


@rule("CONV_2D")
def _conv(s: _Sig) -> int:
    if s.ext.get("grouped"):
        return 6
    if s.t(0) == I8 and s.t(1) == I8 and s.out_types[0] == I8:
        return 3
    if s.hybrid():
        return 5 if s.ext.get("per_channel") else 2
    return 1


@rule("DEPTHWISE_CONV_2D")
def _depthwise(s: _Sig) -> int:
    if s.hybrid():
        return 6 if s.ext.get("per_channel") else 4
    if s.t(0) == I8 and s.t(1) == I8 and s.out_types[0] == I8:
        return 3
    if s.opt.dilationWFactor != 1 or s.opt.dilationHFactor != 1:
        return 2
    return 1


@rule("FULLY_CONNECTED")
def _fc(s: _Sig) -> int:
    if s.hybrid() and s.ext.get("per_channel"):
        return 12
    if s.ext.get("sparse_weight"):
        return 8
    if s.n_inputs == 2:            # an omitted bias written as -1 still counts as an input
        return 6
    if s.opt.keepNumDims:
        return 5
    if s.t(0) == I8 and s.t(1) == I8 and s.out_types[0] == I8:
        return 4
    if s.hybrid():
        return 9 if s.opt.asymmetricQuantizeInputs else 3
    return 1


@rule("TRANSPOSE_CONV")
def _transpose_conv(s: _Sig) -> int:
    if s.opt is not None and s.opt.fusedActivationFunction:
        return 4
    if s.n_inputs == 4 and s.rec.inputs[3] >= 0:
        return 3
    if s.t(1) == I8:
        return 2
    return 1


@rule("MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION", "SOFTMAX", "MEAN", "REDUCE_MAX",
      "REDUCE_MIN", "RELU6", "RSQRT", "MIRROR_PAD", "SUM", "LOG_SOFTMAX", "SPLIT_V",
      "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "LOGISTIC", "TANH", "RELU", "GELU", "ARG_MAX",
      "ARG_MIN", "GREATER", "LESS_EQUAL", "SQUARED_DIFFERENCE")
def _int8_is_2(s: _Sig) -> int:
    if s.rec.builtin == "RELU" and s.t(0) == U8:
        return 2
    return 2 if s.t(0) == I8 else 1


@rule("ADD")
def _add(s: _Sig) -> int:
    if s.t(0) == I64:
        return 4
    return 2 if s.t(0) == I8 else 1


@rule("SUB")
def _sub(s: _Sig) -> int:
    if s.t(0) == I64:
        return 4
    if s.broadcast_over4():
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("MUL")
def _mul(s: _Sig) -> int:
    if s.t(0) == I64:
        return 5
    return 2 if s.t(0) == I8 else 1


@rule("DIV")
def _div(s: _Sig) -> int:
    return 2 if s.broadcast_over4() else 1


@rule("MAXIMUM", "MINIMUM")
def _maxmin(s: _Sig) -> int:
    if s.broadcast_over4():
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("TRANSPOSE")
def _transpose(s: _Sig) -> int:
    if s.in_dims[0] > 5:
        return 6
    if s.in_dims[0] > 4:
        return 4
    if s.t(0) == BOOL:
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("PAD", "PADV2")
def _pad(s: _Sig) -> int:
    if s.in_dims[0] > 4:
        return 4
    return 2 if s.t(0) == I8 else 1


@rule("STRIDED_SLICE")
def _strided_slice(s: _Sig) -> int:
    if s.opt.offset:
        return 8
    if s.opt.ellipsisMask or s.opt.newAxisMask:
        return 6
    if s.in_dims[0] > 4:
        return 4
    if s.t(0) == BOOL:
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("SLICE")
def _slice(s: _Sig) -> int:
    if s.in_dims[0] > 4:
        return 5
    return 2 if s.t(0) == I8 else 1


@rule("GATHER")
def _gather(s: _Sig) -> int:
    if s.opt is not None and s.opt.batchDims:
        return 5
    if s.t(0) == BOOL:
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("SPLIT")
def _split(s: _Sig) -> int:
    if s.t(1) == I32:
        return 3
    return 2 if s.t(1) == I8 else 1


@rule("DEQUANTIZE")
def _dequantize(s: _Sig) -> int:
    if s.t(0) in (I16, F16):
        return 3
    if s.t(0) == I8:
        return 5 if s.ext.get("per_channel") else 2
    return 1


@rule("RESIZE_BILINEAR")
def _resize_bilinear(s: _Sig) -> int:
    if s.opt.halfPixelCenters:
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(s: _Sig) -> int:
    if s.opt.halfPixelCenters or s.opt.alignCorners:
        return 3
    return 2 if s.t(0) == I8 else 1


@rule("BATCH_MATMUL")
def _batch_matmul(s: _Sig) -> int:
    return 2 if s.t(0) == I8 else 1


@rule("PACK")
def _pack(s: _Sig) -> int:
    return 2 if s.t(0) == I8 else 1


@rule("UNPACK")
def _unpack(s: _Sig) -> int:
    return 2 if s.t(0) in (I8, U8) else 1


@rule("CAST")
def _cast(s: _Sig) -> int:
    types = (s.t(0), s.out_types[0])
    if F16 in types:
        return 5
    return 3 if I8 in types else 1


@rule("EXP", "LOG", "REDUCE_PROD")
def _exp(s: _Sig) -> int:
    return 2 if s.t(0) in (I8, I16) else 1


@rule("BROADCAST_TO")
def _broadcast_to(s: _Sig) -> int:
    return 3 if s.t(0) in (I8, I16) else 2


@rule("TILE")
def _tile(s: _Sig) -> int:
    return 3 if s.t(0) == I8 else 1


@rule("ABS")
def _abs(s: _Sig) -> int:
    if s.t(0) == I32:
        return 5
    return 2 if s.t(0) in (I8, U8) else 1


@rule("LEAKY_RELU")
def _leaky(s: _Sig) -> int:
    return 2 if s.t(0) == I16 else 1


def versions_by_builtin(sg: SubgraphBuilder) -> Dict[str, int]:
    """Each builtin's OperatorCode version: the highest its uses need."""
    out: Dict[str, int] = {}
    for rec in sg.ops:
        out[rec.builtin] = max(out.get(rec.builtin, 1), op_version(rec, sg))
    return out


def version_list(sg: SubgraphBuilder) -> List[int]:
    return [op_version(rec, sg) for rec in sg.ops]
