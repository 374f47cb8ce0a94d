"""Small model files of every format, built in code for the runtime tests.

The .tflite files are written by hand with LiteRT's schema object API: the
runtime must be testable without the converters (and its int8 model must have
known scales so the test can compute the exact answer).
"""
from __future__ import annotations

import numpy as np


def conv_classifier_onnx(path: str, seed: int = 0, dynamic_batch: bool = True) -> None:
    """Conv(3->8, 3x3) + Relu + GlobalAveragePool + Flatten + Gemm(8->10) as ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(8).astype(np.float32) * 0.1
    fw = rng.standard_normal((10, 8)).astype(np.float32) * 0.3
    fb = rng.standard_normal(10).astype(np.float32) * 0.1
    batch = "batch" if dynamic_batch else 1
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
         helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
         helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1, name="fc")],
        "conv_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(fw, "fw"), numpy_helper.from_array(fb, "fb")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def onnx_to_mnn(onnx_path: str, mnn_path: str) -> None:
    """Convert with MNN's converter through its C binding (never the console script)."""
    from edgert.native_output import capture_native_output

    with capture_native_output() as out:
        import _tools  # type: ignore
        ok = _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                                "--MNNModel", mnn_path, "--bizCode", "edgert-tests"])
    if not ok:
        raise RuntimeError("MNN conversion failed: " + out.text[-500:])


def _pack(model_t) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model_t.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _tensor(s, name, shape, ttype, buffer, quant=None, signature=None):
    t = s.TensorT()
    t.name, t.shape, t.type, t.buffer = name, list(shape), ttype, buffer
    if signature is not None:
        t.shapeSignature = list(signature)
    if quant is not None:
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = list(quant[0]), list(quant[1])
        q.quantizedDimension = quant[2] if len(quant) > 2 else 0
        t.quantization = q
    return t


def _buffer(s, data: bytes = b""):
    buf = s.BufferT()
    buf.data = list(data) if data else None
    return buf


def _signature(s, inputs, outputs):
    sig = s.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for lst, items in ((sig.inputs, inputs), (sig.outputs, outputs)):
        for name, idx in items:
            tm = s.TensorMapT()
            tm.name, tm.tensorIndex = name, idx
            lst.append(tm)
    return sig


def fc_relu_tflite(path: str, w: np.ndarray, b: np.ndarray, dynamic_batch: bool = True) -> None:
    """y = relu(x @ w.T + b) as a float32 TFLite FULLY_CONNECTED, named "x" -> "y" by signature."""
    from ai_edge_litert import schema_py_generated as s

    out_f, in_f = w.shape
    batch_sig = -1 if dynamic_batch else 1
    tensors = [
        _tensor(s, "serving_x:0", [1, in_f], s.TensorType.FLOAT32, 0, signature=[batch_sig, in_f]),
        _tensor(s, "w", [out_f, in_f], s.TensorType.FLOAT32, 1),
        _tensor(s, "b", [out_f], s.TensorType.FLOAT32, 2),
        _tensor(s, "Identity:0", [1, out_f], s.TensorType.FLOAT32, 0, signature=[batch_sig, out_f]),
    ]
    buffers = [_buffer(s), _buffer(s, w.astype(np.float32).tobytes()),
               _buffer(s, b.astype(np.float32).tobytes())]
    for t in tensors:  # every tensor needs a buffer slot of its own
        if t.buffer == 0:
            buffers.append(_buffer(s))
            t.buffer = len(buffers) - 1
    opts = s.FullyConnectedOptionsT()
    opts.fusedActivationFunction = s.ActivationFunctionType.RELU
    _write_single_op(s, path, tensors, buffers, s.BuiltinOperator.FULLY_CONNECTED,
                     s.BuiltinOptions.FullyConnectedOptions, opts, [0, 1, 2], [3],
                     inputs=[("x", 0)], outputs=[("y", 3)], version=1)


def fc_int8_tflite(path: str, w_q: np.ndarray, b_q: np.ndarray, in_q, w_scale: float,
                   out_q) -> None:
    """A full-int8 FULLY_CONNECTED: int8 input/output with (scale, zero point) ``in_q``/``out_q``."""
    from ai_edge_litert import schema_py_generated as s

    out_f, in_f = w_q.shape
    tensors = [
        _tensor(s, "x_int8", [1, in_f], s.TensorType.INT8, 0, quant=([in_q[0]], [in_q[1]])),
        _tensor(s, "w", [out_f, in_f], s.TensorType.INT8, 1,
                quant=([w_scale] * out_f, [0] * out_f, 0)),
        _tensor(s, "b", [out_f], s.TensorType.INT32, 2,
                quant=([in_q[0] * w_scale] * out_f, [0] * out_f, 0)),
        _tensor(s, "y_int8", [1, out_f], s.TensorType.INT8, 0, quant=([out_q[0]], [out_q[1]])),
    ]
    buffers = [_buffer(s), _buffer(s, w_q.astype(np.int8).tobytes()),
               _buffer(s, b_q.astype(np.int32).tobytes()), _buffer(s), _buffer(s)]
    tensors[0].buffer, tensors[3].buffer = 3, 4
    opts = s.FullyConnectedOptionsT()
    _write_single_op(s, path, tensors, buffers, s.BuiltinOperator.FULLY_CONNECTED,
                     s.BuiltinOptions.FullyConnectedOptions, opts, [0, 1, 2], [3],
                     inputs=[("x", 0)], outputs=[("y", 3)], version=4)


def quantize_tflite(path: str, n: int, scale: float, zero_point: int, dtype: str = "int8") -> None:
    """A lone QUANTIZE: float32 ``x`` [n] -> ``dtype`` ``q`` [n] with (``scale``,
    ``zero_point``): LiteRT's own rounding and saturation, read with ``run(raw=True)``."""
    from ai_edge_litert import schema_py_generated as s

    ttype = {"int8": s.TensorType.INT8, "uint8": s.TensorType.UINT8}[dtype]
    tensors = [_tensor(s, "x", [n], s.TensorType.FLOAT32, 1),
               _tensor(s, "q", [n], ttype, 2, quant=([scale], [zero_point]))]
    buffers = [_buffer(s), _buffer(s), _buffer(s)]
    _write_single_op(s, path, tensors, buffers, s.BuiltinOperator.QUANTIZE, 0, None, [0], [1],
                     inputs=[("x", 0)], outputs=[("q", 1)], version=1)


def _write_single_op(s, path, tensors, buffers, op_code, opt_type, opts, ins, outs,
                     inputs, outputs, version) -> None:
    code = s.OperatorCodeT()
    code.builtinCode = op_code
    code.deprecatedBuiltinCode = min(op_code, 127)
    code.version = version
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, ins, outs
    op.builtinOptionsType, op.builtinOptions = opt_type, opts
    sg = s.SubGraphT()
    sg.tensors, sg.operators = tensors, [op]
    sg.inputs, sg.outputs = [i for _, i in inputs], [i for _, i in outputs]
    sg.name = "main"
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [code], [sg], buffers
    m.description = "edgert test model"
    m.signatureDefs = [_signature(s, inputs, outputs)]
    with open(path, "wb") as f:
        f.write(_pack(m))


def conv_stack_onnx(path: str, channels: int = 16, size: int = 32, layers: int = 3,
                    seed: int = 0) -> None:
    """Conv(3->C) + `layers` x (Conv(C->C, 3x3) + Relu) + GlobalAveragePool + Flatten +
    Gemm(C->10), input 1x3xSIZExSIZE: enough work per call (about a millisecond) for
    thread and timeout tests and benchmarks."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes, prev, cin = [], [], "input", 3
    for k in range(layers + 1):
        w = (rng.standard_normal((channels, cin, 3, 3)) * (1.0 / np.sqrt(9 * cin)))
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{k}"),
                  numpy_helper.from_array(np.zeros(channels, np.float32), f"b{k}")]
        nodes += [helper.make_node("Conv", [prev, f"w{k}", f"b{k}"], [f"c{k}"],
                                   pads=[1, 1, 1, 1], name=f"conv{k}"),
                  helper.make_node("Relu", [f"c{k}"], [f"r{k}"], name=f"relu{k}")]
        prev, cin = f"r{k}", channels
    fw = rng.standard_normal((10, channels)).astype(np.float32) * 0.3
    inits += [numpy_helper.from_array(fw, "fw"),
              numpy_helper.from_array(np.zeros(10, np.float32), "fb")]
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
              helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1, name="fc")]
    graph = helper.make_graph(
        nodes, "conv_stack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
