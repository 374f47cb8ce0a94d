"""The names MNN's converter gives layers of an ONNX graph.

MNN names a Convolution op after the ONNX Conv node's output tensor (a fused
Relu/Relu6 then renames the op's *output*, not the op), and a Gemm / MatMul with
a constant weight, which it turns into a Convolution, ``<output>__matmul_converted``.
Both the sparsity report and compression params need this mapping from a layer
weight to MNN's op name.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

MATMUL_SUFFIX = "__matmul_converted"
_LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def mnn_layer_names(model: Any) -> Dict[str, Tuple[str, str]]:
    """{weight initializer name: (MNN op name, ONNX op type)} for every layer weight."""
    from quant_tables.layer_weights import layer_weights
    from quant_tables.onnx_tensors import load_model

    out: Dict[str, Tuple[str, str]] = {}
    for lw in layer_weights(load_model(model)):
        if lw.op_type not in _LAYER_OPS or lw.name in out:
            continue
        name = lw.output + (MATMUL_SUFFIX if lw.op_type in ("Gemm", "MatMul") else "")
        out[lw.name] = (name, lw.op_type)
    return out
