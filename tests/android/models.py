"""Tiny real models for the Android tests, built in code with seeded weights.

A float classifier (ONNX built with onnx.helper, converted to .mnn by MNN's own
converter through ``_tools.mnnconvert``) and an int8 .tflite written with the
schema's object API that ships with ai-edge-litert (RESHAPE on int8 tensors:
quantized input and output, the case the manifest's quantization serves).
"""
from __future__ import annotations

import os

import numpy as np


def build_onnx_classifier(path: str, seed: int = 0, classes: int = 10,
                          softmax: bool = False) -> str:
    """image [1,3,8,8] float -> Flatten -> Gemm (-> Softmax) -> [1, classes]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.1, size=(classes, 3 * 8 * 8)).astype(np.float32)
    b = rng.normal(0, 0.1, size=(classes,)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w", "b"], ["gemm" if softmax else "logits"],
                              transB=1)]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["gemm"], ["logits"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def onnx_to_mnn(onnx_path: str, mnn_path: str) -> str:
    from edgert.native_output import capture_native_output

    with capture_native_output() as out:  # MNN prints a banner on C stdout at import
        import _tools  # the MNN wheel's C binding; never the mnnconvert console script

        _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                           "--MNNModel", mnn_path, "--bizCode", "edgert"])
    if not os.path.exists(mnn_path):
        raise RuntimeError("MNN conversion failed: " + "; ".join(out.lines()[-5:]))
    return mnn_path


def build_int8_tflite(path: str, scale: float = 0.05, zero_point: int = -3) -> str:
    """input [1,4,4,3] int8 -> RESHAPE -> scores [1,48] int8, one quantization for both."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def quant():
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [zero_point]
        return q

    def tensor(name, shape, buf):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, shape, s.TensorType.INT8, buf, quant()
        return t

    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType = s.BuiltinOptions.ReshapeOptions
    op.builtinOptions = s.ReshapeOptionsT()
    op.builtinOptions.newShape = [1, 48]
    sub = s.SubGraphT()
    sub.tensors = [tensor("image", [1, 4, 4, 3], 1), tensor("scores", [1, 48], 2)]
    sub.inputs, sub.outputs, sub.operators, sub.name = [0], [1], [op], "main"
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.RESHAPE
    code.version = 1
    model = s.ModelT()
    model.version, model.description = 3, "edgert android test"
    model.operatorCodes, model.subgraphs = [code], [sub]
    model.buffers = [s.BufferT() for _ in range(3)]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    with open(path, "wb") as f:
        f.write(b.Output())
    return path
