"""Serialize a built subgraph to .tflite bytes with LiteRT's schema object API.

The rules that bite, all applied here: schema version 3; buffer 0 is the empty
buffer; constant data starts on a 16-byte boundary (XNNPACK and mmap'd loading
read weights in place); every OperatorCode carries its version from
``versions.py`` and both its builtin code fields (``deprecated_builtin_code`` is
capped at 127, the placeholder for newer ops); one SignatureDef
``serving_default`` names the inputs and outputs as the source model does.
Control flow adds subgraphs (``SubgraphBuilder.child``): they are written after the
main one, in index order, sharing the operator codes (each builtin at the highest
version any subgraph needs) and the buffers.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import flatbuffers

from converters.tflite.builder import SubgraphBuilder, options_tag
from converters.tflite.schema import builtin_code, schema
from converters.tflite.versions import versions_by_builtin

SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16
FILE_IDENTIFIER = b"TFL3"
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def _aligned_buffer_class():
    base = schema().BufferT

    class AlignedBufferT(base):
        """A BufferT whose data vector starts on a ``BUFFER_ALIGNMENT`` boundary."""

        def __init__(self, payload: bytes) -> None:
            super().__init__()
            self.payload = payload

        def Pack(self, builder):  # noqa: N802 (the generated API's name)
            mod = schema()
            data = None
            if self.payload:
                n = len(self.payload)
                builder.StartVector(1, n, BUFFER_ALIGNMENT)
                builder.head = builder.head - n
                builder.Bytes[builder.head:builder.head + n] = self.payload
                data = builder.EndVector()
            mod.BufferStart(builder)
            if data is not None:
                mod.BufferAddData(builder, data)
            return mod.BufferEnd(builder)

    return AlignedBufferT


def _operator_codes(graphs: Sequence[SubgraphBuilder]):
    s = schema()
    versions: dict = {}
    for sg in graphs:
        for builtin, v in versions_by_builtin(sg).items():
            versions[builtin] = max(v, versions.get(builtin, 1))
    codes, index = [], {}
    for rec in (r for sg in graphs for r in sg.ops):
        if rec.builtin in index:
            continue
        code = s.OperatorCodeT()
        num = builtin_code(rec.builtin)
        code.builtinCode = num
        code.deprecatedBuiltinCode = min(num, _PLACEHOLDER_FOR_GREATER_OP_CODES)
        code.version = versions[rec.builtin]
        index[rec.builtin] = len(codes)
        codes.append(code)
    return codes, index


def _signature(inputs: Sequence[Tuple[str, int]], outputs: Sequence[Tuple[str, int]]):
    s = schema()
    sig = s.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for dst, pairs in ((sig.inputs, inputs), (sig.outputs, outputs)):
        for name, idx in pairs:
            m = s.TensorMapT()
            m.name, m.tensorIndex = name, idx
            dst.append(m)
    return sig


def _subgraph(sg: SubgraphBuilder, index: dict, inputs: Sequence[int],
              outputs: Sequence[int]):
    s = schema()
    operators = []
    for rec in sg.ops:
        op = s.OperatorT()
        op.opcodeIndex = index[rec.builtin]
        op.inputs, op.outputs = list(rec.inputs), list(rec.outputs)
        op.builtinOptionsType = options_tag(rec.options)
        op.builtinOptions = rec.options
        operators.append(op)
    sub = s.SubGraphT()
    sub.tensors = sg.tensors
    sub.inputs, sub.outputs = list(inputs), list(outputs)
    sub.operators = operators
    sub.name = sg.name
    return sub


def serialize(sg: SubgraphBuilder, inputs: List[Tuple[str, int]],
              outputs: List[Tuple[str, int]], description: str = "edgert") -> bytes:
    """The .tflite bytes for subgraph ``sg`` with I/O named ``(source name, tensor index)``."""
    graphs = sg.subgraphs
    codes, index = _operator_codes(graphs)
    subs = [_subgraph(g, index, [i for _, i in inputs], [i for _, i in outputs])
            if g.index == 0 else _subgraph(g, index, g.inputs, g.outputs) for g in graphs]
    s = schema()
    aligned = _aligned_buffer_class()
    model = s.ModelT()
    model.version = SCHEMA_VERSION
    model.operatorCodes = codes
    model.subgraphs = subs
    model.description = description
    model.buffers = [aligned(data or b"") for data in sg.buffer_data]
    model.signatureDefs = [_signature(inputs, outputs)]
    total = sum(len(d or b"") + BUFFER_ALIGNMENT for d in sg.buffer_data)
    tensors = sum(len(g.tensors) for g in graphs)
    builder = flatbuffers.Builder(total + (1 << 16) + 256 * tensors)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
