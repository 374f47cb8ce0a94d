"""Structural check of a .mnn file, read with the bounds-checked reader in
``edgert.flatbuf`` (field ids from MNN's schema: schema/default/MNN.fbs,
Tensor.fbs, CaffeOp.fbs).

MNN's loader verifies the FlatBuffer framing and then trusts what it reads. The
checks here are the inconsistencies seen to crash it (SIGSEGV, SIGFPE, SIGABRT
in ``tests/fuzz``) that a reader can tell without running the model:

- names and other strings that are not UTF-8 (the Python binding decodes them);
- an op's tensor index outside the net's tensor list;
- an op type or parameter type outside MNN's enums, parameters declared but absent,
  or parameters of another kind than the one MNN reads the op with;
- a constant (``Blob``) whose data type is not one MNN knows, whose dims are
  negative, or whose data vector holds fewer values than its dims need;
- an op with no outputs, or without inputs where it computes from them;
- an input declared larger than the tensor budget;
- a convolution whose kernel, stride, dilation, group or output count is below 1,
  or whose weights and bias disagree with them in count.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

from edgert.flatbuf import FlatBufferError, Table, TensorTooLargeError, root
from edgert.mnn_summary import summarize

# OpType values MNN 3.6 knows (the names in its library: AbsVal 0 .. Stft ~156, Plugin 256
# .. RoPE ~306, Extra 512 .. EltwiseInt8 518, While 600 .. GridSample 604), with room for
# a few newer ones. A value elsewhere is damage.
_OP_TYPE_RANGES = ((0, 170), (256, 320), (512, 530), (600, 620))
_MAX_PARAM_TYPE = 256               # the OpParameter union has about 100 members
# OpType -> the OpParameter member MNN reads it with (op->main_as_X()): a Const with
# no Blob, or a Pooling3D whose parameters say MomentsParam, crash it.
# (MNN.fbs: OpType Const 11, Convolution 12, ConvolutionDepthwise 13, Deconvolution 17,
# DeconvolutionDepthwise 18, Input 34, Pooling 47, Reshape 73, Pooling3D 112,
# ConvertTensor 129, Flatten 28, Concat 10, BinaryOp 7, Eltwise 22, UnaryOp 101,
# Squeeze 90, Unsqueeze 107, Interp 35, InnerProduct 33, Softmax 85, Cast 9,
# Reduction 68, MatMul 39, BatchMatMul 106, StridedSlice 91, Scale 77, Permute 46;
# OpParameter Axis 4, BinaryOp 6, Blob 7, CastParam 8, Convolution2D 9, Eltwise 14,
# Flatten 17, InnerProduct 20, Input 21, Interp 22, MatMul 25, Permute 29, Pool 31,
# ReductionParam 50, Reshape 55, Scale 58, SqueezeParam 64, StridedSliceParam 65,
# TensorConvertInfo 66, UnaryOp 70, BatchMatMulParam 73, Pool3D 79.)
_OP_PARAM = {11: 7, 12: 9, 13: 9, 17: 9, 18: 9, 34: 21, 47: 31, 73: 55, 112: 79, 129: 66,
             28: 17, 10: 4, 7: 6, 22: 14, 101: 70, 90: 64, 107: 64, 35: 22, 33: 20, 85: 4,
             9: 8, 68: 50, 39: 25, 106: 73, 91: 65, 77: 58, 46: 29}
# MNN dereferences these parameters unconditionally: none of these ops comes without them
_PARAM_REQUIRED = set(_OP_PARAM)
# Parameter kinds that belong to these ops only (a Blob on a Normalize op crashed MNN):
# Blob: Const, TrainableParam 266; Input: Input; Convolution2D: the convolutions,
# Conv2DBackPropFilter 265, ConvInt8 513, DepthwiseConvInt8 515, and Im2Col 29 / Col2Im 88
# (window geometry only: MNN's converter writes them for a Conv3d); Pool: Pooling,
# PoolGrad 263, PoolInt8 516; Pool3D: Pooling3D; TensorConvertInfo: ConvertTensor.
_IM2COL = {29, 88}
_PARAM_OWNERS = {7: {11, 266}, 21: {34}, 9: {12, 13, 17, 18, 265, 513, 515} | _IM2COL,
                 31: {47, 263, 516}, 79: {112}, 66: {129}}
# Ops that compute from inputs (an op of these types with none crashed MNN)
_NEEDS_INPUTS = (set(_OP_PARAM) - {11, 34}) | {66, 69, 70, 80, 81, 84, 95}
_PARAM_INPUT = 21
# Net: oplists 3, outputName 4, tensorName 7.  Op: inputIndexes 0, main_type 1, main 2,
# name 3, outputIndexes 4, type 5.
_PARAM_BLOB, _PARAM_CONV2D = 7, 9
# DataType (Type.fbs) -> (Blob vector field, bytes per value) for the types stored in
# a vector of their own; others are accepted without a size check.
_BLOB_DATA = {1: (7, 4), 3: (5, 4), 4: (3, 1), 6: (4, 1), 9: (6, 8)}
_MAX_DATA_TYPE = 21                 # DT_VARIANT
_BLOB_EXTERNAL = 9                  # Blob.external: [offset, size] in a weight file
# Convolution2D: common 0, weight 1, bias 2, quanParameter 3, symmetricQuan 4, sparse 5,
# external 6 (MNN 2.x+). Convolution2DCommon: kernelX 2, kernelY 3, strideX 4, strideY 5,
# dilateX 6, dilateY 7, group 9, outputCount 10, inputCount 11.
_CONV_AT_LEAST_1 = {2: "kernelX", 3: "kernelY", 4: "strideX", 5: "strideY", 6: "dilateX",
                    7: "dilateY", 9: "group"}
_CONV_DEFAULTS = {2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 9: 1}


def read_mnn(data: bytes, max_tensor_bytes: Optional[int] = None) -> Dict[str, object]:
    """Check ``data`` as far as the schema allows; raise ``FlatBufferError`` naming the op
    (``TensorTooLargeError`` for an input declared over ``max_tensor_bytes``)."""
    if len(data) >= 8 and data[4:8] == b"TFL3":
        raise FlatBufferError("this is a TFLite file, not MNN")
    net = root(data)
    ops = net.tables(3)
    if not ops:
        raise FlatBufferError("the net has no ops")
    # MNN's Python binding turns these strings into str without checking the result:
    # bytes that are not UTF-8 crash it
    tensor_names = _strict(lambda: net.strings(7, strict=True), "the net's tensor names")
    names = len(tensor_names)
    _strict(lambda: net.strings(4, strict=True), "the net's output names")
    _strict(lambda: net.string(0, strict=True), "the net's bizCode")
    _strict(lambda: net.string(11, strict=True), "the net's uuid")
    for i, op in enumerate(ops):
        _check_op(op, i, names, max_tensor_bytes)
    return {"ops": len(ops), "tensors": names, **summarize(net, ops, tensor_names)}


def _strict(read, what: str):
    try:
        return read()
    except FlatBufferError as exc:
        raise FlatBufferError(f"{what}: {exc}") from None


def _check_op(op: Table, i: int, names: int, max_tensor_bytes: Optional[int]) -> None:
    op_name = _strict(lambda: op.string(3, strict=True), f"the name of op {i}")
    where = f"op {i} ({op_name!r})"
    for field_id, what in ((0, "input"), (4, "output")):
        for idx in op.scalars(field_id, "i"):
            if not 0 <= idx < names:
                raise FlatBufferError(f"{where} has {what} tensor index {idx}, but the net "
                                      f"names {names} tensors")
    op_type = op.scalar(5, "i")
    if not any(lo <= op_type < hi for lo, hi in _OP_TYPE_RANGES):
        raise FlatBufferError(f"{where} has an unknown type {op_type}")
    param_type = op.scalar(1, "B")
    if param_type >= _MAX_PARAM_TYPE:
        raise FlatBufferError(f"{where} has an unknown parameter type {param_type}")
    main = op.table(2)
    if param_type and main is None:
        raise FlatBufferError(f"{where} declares parameters it lacks")
    want = _OP_PARAM.get(op_type)
    if want is not None and (param_type or op_type in _PARAM_REQUIRED) and param_type != want:
        raise FlatBufferError(f"{where} of type {op_type} has parameters of type "
                              f"{param_type}; MNN reads this op with parameters of type {want}")
    owners = _PARAM_OWNERS.get(param_type)
    if owners is not None and op_type not in owners:
        raise FlatBufferError(f"{where} of type {op_type} has parameters of type {param_type}, "
                              f"which only ops of types {sorted(owners)} have")
    if not op.scalars(4, "i"):
        raise FlatBufferError(f"{where} has no outputs")
    if op_type in _NEEDS_INPUTS and not op.scalars(0, "i"):
        raise FlatBufferError(f"{where} of type {op_type} has no inputs")
    if main is None:
        return
    if param_type == _PARAM_BLOB:
        _check_blob(main, where)
    elif param_type == _PARAM_CONV2D:
        _check_conv2d(main, where, window_only=op_type in _IM2COL)
    elif param_type == _PARAM_INPUT:
        _check_input(main, where, max_tensor_bytes)


def _check_input(inp: Table, where: str, max_tensor_bytes: Optional[int]) -> None:
    """Input: dims 0, dtype 1. MNN allocates the declared shape at load."""
    dims = inp.scalars(0, "i")
    if any(d < -1 for d in dims):
        raise FlatBufferError(f"{where}: the input has negative dims {dims}")
    size = math.prod(max(d, 1) for d in dims) * _BLOB_DATA.get(inp.scalar(1, "i", 1), (0, 4))[1]
    if max_tensor_bytes is not None and size > max_tensor_bytes:
        raise TensorTooLargeError(
            f"{where}: the input declares shape {'x'.join(map(str, dims))}, "
            f"{size / 2 ** 30:.1f} GiB, over the limit of {max_tensor_bytes / 2 ** 30:.1f} GiB "
            "per tensor")


def _check_blob(blob: Table, where: str) -> None:
    dims = blob.scalars(0, "i")
    dtype = blob.scalar(2, "i", default=1)
    if not 0 < dtype <= _MAX_DATA_TYPE:
        raise FlatBufferError(f"{where}: its constant has an unknown data type {dtype}")
    if any(d < 0 for d in dims):
        raise FlatBufferError(f"{where}: its constant has negative dims {dims}")
    if dtype not in _BLOB_DATA or blob.has(_BLOB_EXTERNAL):
        return
    field_id, size = _BLOB_DATA[dtype]
    have = blob.vector_len(field_id, size)
    need = math.prod(dims)
    if have < need:
        raise FlatBufferError(f"{where}: its constant of shape {dims} needs {need} values, "
                              f"its data holds {have}")


def _check_conv2d(conv: Table, where: str, window_only: bool = False) -> None:
    common: Optional[Table] = conv.table(0)
    if common is None:
        raise FlatBufferError(f"{where}: a convolution without its common parameters")
    values = {fid: common.scalar(fid, "i", default=_CONV_DEFAULTS[fid])
              for fid in _CONV_AT_LEAST_1}
    for fid, name in _CONV_AT_LEAST_1.items():
        if values[fid] < 1:
            raise FlatBufferError(f"{where}: convolution {name} is {values[fid]}")
    if window_only:     # Im2Col/Col2Im: a window, no weights and no output channels
        return
    out_count = common.scalar(10, "i")
    if out_count < 1:
        raise FlatBufferError(f"{where}: convolution outputCount is {out_count}")
    if conv.has(3) or conv.has(4) or conv.has(5) or conv.has(6):
        return   # quantized, sparse or external weights: stored another way
    weights, bias = conv.vector_len(1, 4), conv.vector_len(2, 4)
    per_input = out_count * values[2] * values[3]
    if weights and weights % per_input:
        raise FlatBufferError(
            f"{where}: {weights} convolution weights are not a whole number of "
            f"{out_count} x {values[3]} x {values[2]} kernels")
    in_count = common.scalar(11, "i")
    if weights and in_count > 0 and weights != per_input * (in_count // values[9]):
        raise FlatBufferError(
            f"{where}: {weights} convolution weights, but {out_count} outputs x "
            f"{in_count // values[9]} inputs per group x {values[3]}x{values[2]} need "
            f"{per_input * (in_count // values[9])}")
    if bias and bias != out_count:
        raise FlatBufferError(f"{where}: {bias} convolution biases for {out_count} outputs")
