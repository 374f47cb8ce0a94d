"""What a model file says about its own precision and sparsity, read from its bytes.

Why from the bytes: a file name says what someone meant (``net_int8.tflite``
may be anything), and a conversion report may be gone or describe the last
conversion of that name only (``convert`` writes one ``<name>.report.json``
per output folder). The file itself cannot be wrong about what it holds.

Precision names are the converter's: ``fp32``, ``fp16``, ``int8_weights`` and
``int4_weights`` (float compute, quantized weights), ``int8`` (integer compute,
quantized activations). Each reader is a short walk of its format with the
runtime's bounds-checked readers (``edgert.flatbuf``; a tiny protobuf walk for
ONNX, whose package the farm does not need); no engine loads the file.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from edgert.flatbuf import FlatBufferError, Table, root


@dataclass(frozen=True)
class FileFacts:
    precision: str            # fp32, fp16, int8_weights, int4_weights, int8, or "unknown"
    sparse: bool = False      # sparse weight tensors (TFLite) / sparse convolutions (MNN)
    why: str = ""             # the evidence, for the report's tooltip


def read_facts(path: str, fmt: str) -> FileFacts:
    """The precision and sparsity stored in ``path`` (``fmt``: tflite, mnn, onnx)."""
    with open(path, "rb") as f:
        data = f.read()
    reader = {"tflite": _tflite, "mnn": _mnn, "onnx": _onnx}.get(fmt)
    if reader is None:
        return FileFacts("unknown", why=f"no reader for {fmt}")
    try:
        return reader(data)
    except (FlatBufferError, ValueError, IndexError) as exc:
        return FileFacts("unknown", why=f"could not read the file: {exc}")
    except Exception as exc:  # noqa: BLE001 - a heuristic reader must never stop a plan
        return FileFacts("unknown", why=f"could not read the file: {type(exc).__name__}: "
                                        f"{exc}")


# -- TFLite ----------------------------------------------------------------------------------
# TensorType ids of LiteRT's schema
_TFL_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8",
              7: "int16", 17: "int4", 16: "uint16", 18: "bfloat16"}
_QUANT_INT = ("int8", "uint8", "int16", "int4")


def _tflite(data: bytes) -> FileFacts:
    """Constants (tensors with data) are weights; the rest are activations. Quantized
    integer activations mean integer compute (float-only and weight-only files have
    none); else the weights' dominant type decides."""
    model = root(data)
    buffers = model.tables(4)
    sizes = [b.vector_len(0, 1) or b.scalar(2, "Q") for b in buffers]
    sub = model.tables(2)[0]
    weights: Counter = Counter()
    acts: Counter = Counter()
    sparse = False
    for t in sub.tables(0):
        kind = _TFL_TYPES.get(t.scalar(1, "b"), "other")
        b = t.scalar(2, "I")
        quant = t.table(4)
        quantized = quant is not None and quant.vector_len(2, 4) > 0
        sparse = sparse or t.has(6)
        if 0 < b < len(sizes) and sizes[b]:
            if kind.startswith("float") or (kind in _QUANT_INT and quantized):
                weights[kind] += sizes[b]
        elif kind in _QUANT_INT and quantized:
            acts["int"] += 1
        elif kind.startswith("float"):
            acts["float"] += 1
    return _decide(weights, acts, sparse, "tflite")


def _decide(weights: Counter, acts: Counter, sparse: bool, fmt: str) -> FileFacts:
    evidence = (f"{fmt} weights by bytes: "
                + (", ".join(f"{k} {v}" for k, v in weights.most_common()) or "none")
                + f"; activations: {acts.get('int', 0)} integer, {acts.get('float', 0)} float")
    if acts.get("int", 0):      # integer activations: integer kernels (float fallbacks aside)
        return FileFacts("int8", sparse, evidence)
    top = weights.most_common(1)[0][0] if weights else "float32"
    precision = {"float16": "fp16", "bfloat16": "bf16", "int8": "int8_weights",
                 "uint8": "int8_weights", "int16": "int16_weights",
                 "int4": "int4_weights"}.get(top, "fp32")
    return FileFacts(precision, sparse, evidence)


# -- MNN -------------------------------------------------------------------------------------
# Field ids of MNN's schema (MNN.fbs, CaffeOp.fbs): Net.extraTensorDescribe 1, oplists 3;
# Op.main 2, type 5; Convolution2D.weight 1, quanParameter 3, symmetricQuan 4,
# sparseParameter 5; IDSTQuan.buffer 0, type 2, useInt32 3; TensorDescribe.quantInfo 4.
_MNN_CONVS = (12, 13, 17, 18)
_IDST_FP16 = 3


def _mnn(data: bytes) -> FileFacts:
    net = root(data)
    weights: Counter = Counter()
    acts: Counter = Counter()
    sparse = False
    for op in net.tables(3):
        if op.scalar(5, "i") not in _MNN_CONVS:
            continue
        conv = op.table(2)
        if conv is None:
            continue
        sparse = sparse or conv.has(5)
        if conv.table(4) is not None:          # symmetricQuan: an int8 kernel
            acts["int"] += 1
        else:
            acts["float"] += 1
        quan = conv.table(3)
        if quan is None:
            weights["float32"] += conv.vector_len(1, 4) * 4
            continue
        n = quan.vector_len(0, 1)
        if quan.vector_len(13, 4):             # sparse storage: float values + their index
            sparse = True
            weights["float32"] += quan.scalar(12, "I") * 4
        elif quan.scalar(2, "i") == _IDST_FP16:
            weights["float16"] += n
        else:
            weights[_idst_bits(quan)] += n
    for desc in net.tables(1):
        if desc.table(4) is not None:
            acts["int"] += 1
    return _decide(weights, acts, sparse, "mnn")


def _idst_bits(quan: Table) -> str:
    """int8 or int4 weights of MNN's IDST encoding: the buffer starts with the number of
    dims (1 byte), the dims (uint16, or int32 with useInt32), then the size of the
    value table (1 byte; 0 stands for 256): 256 values are 8-bit weights, 16 are 4-bit."""
    pos, n = quan._vector(0, 1)
    if n < 2:
        return "int8"
    buf = quan.buf
    dims = buf[pos]
    at = pos + 1 + dims * (4 if quan.scalar(3, "B") else 2)
    if at >= pos + n:
        return "int8"
    count = buf[at] or 256
    return "int4" if count <= 16 else "int8"


# -- ONNX ------------------------------------------------------------------------------------
# ModelProto.graph 7; GraphProto.node 1, initializer 5, sparse_initializer 15;
# NodeProto.op_type 4; TensorProto.dims 1, data_type 2 (FLOAT 1, UINT8 2, INT8 3,
# FLOAT16 10, BFLOAT16 16, INT4 22)
_ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16", 16: "bfloat16", 22: "int4"}
_ONNX_BITS = {"float32": 32, "uint8": 8, "int8": 8, "float16": 16, "bfloat16": 16, "int4": 4}
_QUANT_OPS = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
              "MatMulInteger", "DynamicQuantizeLinear"}


def _onnx(data: bytes) -> FileFacts:
    graph = _first(data, 7)
    if graph is None:
        raise ValueError("no graph in the ONNX file")
    weights: Counter = Counter()
    ops: List[str] = []
    sparse = False
    for field, wire, value in _fields(graph):
        if field == 1 and wire == 2:
            op = _first(value, 4)
            ops.append(bytes(op).decode("utf-8", "replace") if op is not None else "")
        elif field == 5 and wire == 2:
            dtype, count = _tensor_type(value)
            kind = _ONNX_TYPES.get(dtype, "other")
            weights[kind] += count * _ONNX_BITS.get(kind, 32) // 8
        elif field == 15:
            sparse = True
    acts = Counter(int=1) if _QUANT_OPS & set(ops) else Counter()
    floats = Counter({k: v for k, v in weights.items() if k in ("float32", "float16",
                                                                 "bfloat16")})
    if not acts and floats:
        weights = floats   # int64 shapes and int32 indices are not weights
    return _decide(weights, acts, sparse, "onnx")


def _tensor_type(tensor) -> Tuple[int, int]:
    dtype, count = 0, 1
    for field, wire, value in _fields(tensor):
        if field == 2 and wire == 0:
            dtype = int(value)
        elif field == 1 and wire == 0:
            count *= int(value)
        elif field == 1 and wire == 2:      # packed dims
            for d in _varints(value):
                count *= d
    return dtype, count


def _first(message, wanted: int) -> Optional[memoryview]:
    for field, wire, value in _fields(message):
        if field == wanted and wire == 2:
            return value        # type: ignore[return-value]
    return None


def _varint(buf, pos: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _varints(buf) -> Iterator[int]:
    pos = 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        yield v


def _fields(buf) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message; length-delimited values
    are memoryviews of ``buf`` (no copies: an ONNX file may hold gigabytes of weights)."""
    view = memoryview(buf)
    pos, end = 0, len(view)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("a field runs past the end of its message")
            yield field, wire, view[pos:pos + n]
            pos += n
        elif wire == 1:
            pos += 8
            yield field, wire, None
        elif wire == 5:
            pos += 4
            yield field, wire, None
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def summary(facts: FileFacts) -> Dict[str, object]:
    return {"precision": facts.precision, "sparse": facts.sparse, "why": facts.why}
