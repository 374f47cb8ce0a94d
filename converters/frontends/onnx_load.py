"""ONNX front-end: a file (external data too), a ModelProto or an onnx_ir.Model,
checked and shape-inferred, with input shapes fixed or a batch dim made dynamic
on request.

Errors a user can cause say what is wrong with the file: not ONNX at all (a
TFLite file, text, a truncated download), ONNX that fails the checker (with the
checker's message), an input shape for an input the model does not have.
"""
from __future__ import annotations

import os
from typing import List, Mapping, Optional, Tuple

import onnx
import onnx_ir as ir

from converters.frontends.shapes import Shape, check_known
from edgert.errors import InputError, ModelFileError

_PROTO_LIMIT = 2 ** 31 - 1   # protobuf's 2 GB limit: beyond it, check and infer by path


def read_onnx(path: str) -> onnx.ModelProto:
    """Load an ONNX file and its external data, or raise ModelFileError saying why not."""
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    from edgert.model_file import check_model_file

    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        raise ModelFileError(f"{path}: this is a TFLite model, not ONNX; convert from the "
                             "model's source (PyTorch or ONNX)")
    try:
        check_model_file(path, "onnx")  # cheap byte checks: zip, HTML, text
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not ONNX"
        raise ModelFileError(f"{path}: not an ONNX model ({exc})") from None
    try:
        proto = onnx.load(path, load_external_data=True)
    except Exception as exc:  # DecodeError, missing external data file, ...
        raise ModelFileError(f"{path}: not a readable ONNX model ({exc})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelFileError(f"{path}: not an ONNX model (no graph in the file)")
    return proto


def check_and_infer(proto: onnx.ModelProto, path: Optional[str], notes: List[str]
                    ) -> onnx.ModelProto:
    """onnx.checker, then ONNX shape inference (data propagation on, not strict)."""
    big = proto.ByteSize() > _PROTO_LIMIT
    where = path or "the ONNX model"
    try:
        onnx.checker.check_model(path if big and path else proto)
    except onnx.checker.ValidationError as exc:
        raise ModelFileError(f"{where}: fails the ONNX checker: {exc}") from None
    except UnicodeDecodeError as exc:   # the checker's message quotes bytes that are not UTF-8
        raise ModelFileError(f"{where}: fails the ONNX checker on a name or string that is "
                             f"not UTF-8 ({exc.object[max(0, exc.start - 30):exc.end + 10]!r})"
                             ) from None
    except (ValueError, RuntimeError, OSError) as exc:   # checker internals, external files
        raise ModelFileError(f"{where}: the ONNX checker cannot read it: "
                             f"{type(exc).__name__}: {exc}") from None
    if big:
        notes.append("model over 2 GB: shape inference skipped")
        return proto
    try:
        return _infer_without_weights(proto)
    except Exception as exc:  # inference is a help, not a requirement
        notes.append(f"ONNX shape inference failed ({exc}); continuing without it")
        return proto


# float weights at least this big are left out of shape inference (data propagation reads
# only small integer tensors: shapes, axes, indices)
_INFER_STRIP_BYTES = 4096
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                onnx.TensorProto.BFLOAT16}


def _infer_without_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference (data propagation on, not strict) with the big float weights'
    bytes set aside: inference serializes the model into C++ and parses the result back,
    which for ResNet-18's 46 MB of weights was 0.4 s of the 0.45 s it took. The bytes
    go back into the inferred model's initializers (same names, same order)."""
    kept = []
    for t in proto.graph.initializer:
        if t.data_type in _FLOAT_TYPES and t.HasField("raw_data") and \
                len(t.raw_data) >= _INFER_STRIP_BYTES:
            kept.append((t, t.raw_data))
            t.ClearField("raw_data")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    finally:
        for t, raw in kept:
            t.raw_data = raw
    if kept:
        by_name = {t.name: raw for t, raw in kept}
        for t in inferred.graph.initializer:
            if t.name in by_name and not t.HasField("raw_data"):
                t.raw_data = by_name[t.name]
    return inferred


def input_names(proto: onnx.ModelProto) -> List[str]:
    """The real inputs (ONNX < IR 4 also lists initializers as inputs)."""
    inits = {t.name for t in proto.graph.initializer}
    return [v.name for v in proto.graph.input if v.name not in inits]


def apply_shapes(proto: onnx.ModelProto, shapes: Mapping[str, Shape], dynamic_batch: bool,
                 notes: List[str]) -> bool:
    """Fix input dims from ``shapes``; with ``dynamic_batch`` make dim 0 symbolic.

    When anything changes, the shapes recorded for intermediate values and
    outputs are dropped so that shape inference recomputes them from the inputs.
    """
    names = input_names(proto)
    check_known(shapes, names)
    changed = False
    for v in proto.graph.input:
        if v.name not in names or not v.type.HasField("tensor_type"):
            continue
        tshape = v.type.tensor_type.shape
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tshape.dim]
        if v.name in shapes:
            want = list(shapes[v.name])
            if dims and len(dims) != len(want):
                raise InputError(f"input {v.name!r} has rank {len(dims)} ({_fmt(dims)}); the "
                                 f"given shape {_fmt(want)} has rank {len(want)}")
            for i, (have, new) in enumerate(zip(dims, want)):
                if isinstance(have, int) and isinstance(new, int) and have != new:
                    raise InputError(f"input {v.name!r} dim {i} is fixed at {have} in the "
                                     f"model; the given shape {_fmt(want)} says {new}")
            dims, changed = want, True
        if dynamic_batch and dims and dims[0] != "batch":
            if isinstance(dims[0], int):
                notes.append(f"input {v.name!r}: batch dim {dims[0]} made dynamic")
            dims[0], changed = "batch", True
        del tshape.dim[:]
        for d in dims:
            if isinstance(d, int):
                tshape.dim.add().dim_value = d
            else:
                tshape.dim.add().dim_param = str(d)
    if changed:
        del proto.graph.value_info[:]
        for out in proto.graph.output:         # keep the rank, forget the dims
            if out.type.HasField("tensor_type"):
                for d in out.type.tensor_type.shape.dim:
                    d.Clear()
    return changed


def negative_dims_dynamic(proto: onnx.ModelProto, notes: List[str]) -> bool:
    """Dims declared ``dim_value: -1`` (Paddle exports write the batch so) made symbolic,
    as ONNX Runtime reads them; ``--input-shape`` then fixes them like any dynamic dim.
    Returns whether anything changed."""
    inputs = set(input_names(proto))
    changed = False
    for v in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        if not v.type.HasField("tensor_type"):
            continue
        for i, d in enumerate(v.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value < 0:
                d.Clear()
                d.dim_param = f"{v.name}_dim{i}"
                changed = True
                if v.name in inputs:
                    notes.append(f"input {v.name!r}: dim {i} is declared -1 "
                                 f"in the file; read as dynamic, as ONNX Runtime does "
                                 f"(--input-shape fixes it)")
    return changed


def _fmt(dims) -> str:
    return "x".join(str(d) for d in dims)


def _has_negative_dims(proto: onnx.ModelProto) -> bool:
    return any(d.HasField("dim_value") and d.dim_value < 0
               for v in list(proto.graph.input) + list(proto.graph.output)
               + list(proto.graph.value_info) if v.type.HasField("tensor_type")
               for d in v.type.tensor_type.shape.dim)


def load_onnx(source, shapes: Mapping[str, Shape], dynamic_batch: bool
              ) -> Tuple[ir.Model, Optional[str], List[str], bool]:
    """(model, path or None, notes, as_file) from a path, a ModelProto or an onnx_ir.Model;
    ``as_file``: the model is the file's graph as written (no dims changed, no external
    data), so a tool may read the file instead of a serialization of the model."""
    notes: List[str] = []
    path = None
    if isinstance(source, ir.Model):
        proto = ir.serde.serialize_model(source)
    elif isinstance(source, onnx.ModelProto):
        proto = source
    else:
        path = os.fspath(source)
        proto = read_onnx(path)
    as_file = path is not None and not any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    if shapes or dynamic_batch or _has_negative_dims(proto):
        as_file = False
        proto_copy = onnx.ModelProto()
        proto_copy.CopyFrom(proto)      # never change the caller's proto
        proto = proto_copy
        negative_dims_dynamic(proto, notes)
        apply_shapes(proto, shapes, dynamic_batch, notes)
    proto = check_and_infer(proto, path, notes)
    return ir.serde.deserialize_model(proto), path, notes, as_file
