"""What a .mnn file declares beyond its structure: input dims (which are dynamic) and
how it is quantized, read with the bounds-checked reader of ``edgert.flatbuf`` after
``edgert.mnn_file`` has checked the file (field ids from MNN's schema 3.x).

Why read the file: MNN's module API reports a dynamic batch as 1 (its converter fills
an unset batch with ``--batch``, default 1), and says nothing of quantization. The
converter keeps other dynamic dims as -1; the batch it fixes is recorded by edgert's
MNN backend in the net's ``bizCode`` (``edgert {"dynamic": {"input": [0]}}``), the one
free-form string MNN carries through unchanged, so every engine reports ``?`` for it.

Quantization, as ``edgert info`` shows it for TFLite:
- weights: a convolution's ``quanParameter`` (IDSTQuan) holds integer weights; the
  width is read from its buffer header (dim count, dims, then the size of the value
  table: 0 means 256, i.e. 8 bits; 16 means 4 bits); ``type`` 3 is fp16 storage.
- activations: ``symmetricQuan`` or a non-zero ``scaleIn`` on a convolution, a
  tensor's ``quantInfo`` in ``extraTensorDescribe``, or MNN's int8 op types.
"""
from __future__ import annotations

import json
import math
from typing import Dict, List, Optional

from edgert.flatbuf import Table

BIZCODE = "edgert"
_INPUT, _CONV2D_PARAM = 34, 9
_CONV_TYPES = {12, 13, 17, 18}
# ConvInt8 513, DepthwiseConvInt8 515, PoolInt8 516, EltwiseInt8 518, FloatToInt8 (Int8ToFloat)
_INT8_OP_TYPES = {513, 515, 516, 518, 130, 131}
_IDST_FP16 = 3


def bizcode_for(dynamic: Dict[str, List[int]]) -> str:
    """The ``--bizCode`` that records ``{input name: [dynamic axes]}`` (empty: none)."""
    dynamic = {k: sorted(int(a) for a in v) for k, v in dynamic.items() if v}
    return BIZCODE + (" " + json.dumps({"dynamic": dynamic}, sort_keys=True) if dynamic else "")


def declared_dynamic(bizcode: Optional[str]) -> Dict[str, List[int]]:
    """``{input name: [axes]}`` recorded by ``bizcode_for``; {} for any other bizCode."""
    if not bizcode or not bizcode.startswith(BIZCODE + " {"):
        return {}
    try:
        doc = json.loads(bizcode[len(BIZCODE) + 1:])
        return {str(k): [int(a) for a in v] for k, v in dict(doc.get("dynamic", {})).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def summarize(net: Table, ops: List[Table], names: List[str]) -> Dict[str, object]:
    """``input_dims`` ({name: dims, None where dynamic}), ``quantized`` and
    ``quantization`` ({"weights": "int8"/"int4"/"fp16"/"float", "activations":
    "int8"/"float", "quantized_layers": n, "layers": m})."""
    dynamic = declared_dynamic(net.string(0))
    input_dims: Dict[str, List[Optional[int]]] = {}
    bits: List[int] = []
    fp16 = convs = int8_act = 0
    for op in ops:
        op_type = op.scalar(5, "i")
        param = op.table(2)
        if op_type == _INPUT and param is not None:
            outs = op.scalars(4, "i")
            name = names[outs[0]] if outs and 0 <= outs[0] < len(names) else ""
            axes = set(dynamic.get(name, ()))
            input_dims[name] = [None if d < 0 or k in axes else d
                                for k, d in enumerate(param.scalars(0, "i"))]
        elif op_type in _INT8_OP_TYPES:
            int8_act += 1
        elif op_type in _CONV_TYPES and op.scalar(1, "B") == _CONV2D_PARAM:
            conv = op.table(2)
            if conv is None:
                continue
            convs += 1
            quan = conv.table(3)
            if conv.has(4) or (quan is not None and quan.scalar(5, "f", 0.0)):
                int8_act += 1
            if quan is None or quan.vector_len(13, 4):   # float, or sparse float values
                continue
            if quan.scalar(2, "i") == _IDST_FP16:
                fp16 += 1
            else:
                bits.append(_idst_bits(quan))
    int8_act += sum(1 for d in net.tables(1) if d.has(4))
    weights = ("int4" if bits and max(bits) <= 4 else "int8" if bits else
               "fp16" if fp16 else "float")
    quantization = {"weights": weights, "activations": "int8" if int8_act else "float",
                    "quantized_layers": len(bits), "layers": convs}
    bizcode = net.string(0) or ""
    return {"input_dims": input_dims, "quantized": bool(bits or int8_act),
            "quantization": quantization,
            # written by edgert's MNN backend: every dynamic dim is in input_dims as None,
            # so the other dims are the ones verification ran and a feed must keep them
            "dims_declared": bizcode == BIZCODE or bizcode.startswith(BIZCODE + " {")}


def _idst_bits(quan: Table) -> int:
    """Bits per weight from an IDSTQuan buffer header: dim count (1 byte), dims (uint16,
    or int32 with ``shapeInt32``), then the value-table size (1 byte; 0 = 256)."""
    head = quan.head(0, 1 + 4 * 8 + 1)
    if not head:
        return 8
    width = 4 if quan.scalar(11, "B") else 2
    at = 1 + head[0] * width
    if at >= len(head):
        return 8
    size = head[at] or 256
    return max(1, math.ceil(math.log2(size)))

