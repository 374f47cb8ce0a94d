"""Hostile model files built on purpose, each a case a fuzzer finds rarely or never:
loops that never end, tensors declared far larger than memory, names that are not
UTF-8, external data that is missing or points outside the model's folder, and the
converter's memory bombs.

Each builder writes a small file and returns its path; ``RUNTIME_CASES`` lists the
runtime's with the outcome expected from ``edgert.load`` + one run.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Tuple

import numpy as np

from tests.runtime.model_builders import _buffer, _pack, _signature, _tensor


# -- TFLite ---------------------------------------------------------------------------

def _op(s, opcode_index, ins, outs, opt_type=0, opts=None):
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, list(ins), list(outs)
    if opts is not None:
        op.builtinOptionsType, op.builtinOptions = opt_type, opts
    return op


def _code(s, builtin, version=1):
    c = s.OperatorCodeT()
    c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), version
    return c


def _subgraph(s, name, tensors, ops, ins, outs):
    sg = s.SubGraphT()
    sg.name, sg.tensors, sg.operators, sg.inputs, sg.outputs = name, tensors, ops, ins, outs
    return sg


def _model(s, codes, subgraphs, n_buffers, signature=None):
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs = 3, codes, subgraphs
    m.buffers = [_buffer(s) for _ in range(n_buffers)]
    m.description = "edgert hostile test model"
    if signature is not None:
        m.signatureDefs = [signature]
    return m


def tflite_while_forever(path: str) -> str:
    """y = WHILE(not (x < x)) x = relu(x): the condition is true for every x, NaN too."""
    from ai_edge_litert import schema_py_generated as s

    F, B = s.TensorType.FLOAT32, s.TensorType.BOOL
    codes = [_code(s, s.BuiltinOperator.WHILE), _code(s, s.BuiltinOperator.LESS),
             _code(s, s.BuiltinOperator.LOGICAL_NOT), _code(s, s.BuiltinOperator.RELU)]
    opts = s.WhileOptionsT()
    opts.condSubgraphIndex, opts.bodySubgraphIndex = 1, 2
    main = _subgraph(s, "main", [_tensor(s, "x", [1], F, 1), _tensor(s, "y", [1], F, 2)],
                     [_op(s, 0, [0], [1], s.BuiltinOptions.WhileOptions, opts)], [0], [1])
    cond = _subgraph(s, "cond", [_tensor(s, "a", [1], F, 3), _tensor(s, "l", [1], B, 4),
                                 _tensor(s, "c", [1], B, 5)],
                     [_op(s, 1, [0, 0], [1]), _op(s, 2, [1], [2])], [0], [2])
    body = _subgraph(s, "body", [_tensor(s, "a", [1], F, 6), _tensor(s, "b", [1], F, 7)],
                     [_op(s, 3, [0], [1])], [0], [1])
    sig = _signature(s, [("x", 0)], [("y", 1)])
    _write(path, _pack(_model(s, codes, [main, cond, body], 8, sig)))
    return path


def tflite_huge_input(path: str, rows: int = 268_435_456) -> str:
    """y = x + x with x declared ``rows`` x 6 float32 (6 GiB for the default rows)."""
    from ai_edge_litert import schema_py_generated as s

    F = s.TensorType.FLOAT32
    opts = s.AddOptionsT()
    main = _subgraph(s, "main", [_tensor(s, "x", [rows, 6], F, 1),
                                 _tensor(s, "y", [rows, 6], F, 2)],
                     [_op(s, 0, [0, 0], [1], s.BuiltinOptions.AddOptions, opts)], [0], [1])
    _write(path, _pack(_model(s, [_code(s, s.BuiltinOperator.ADD)], [main], 3)))
    return path


def tflite_bad_utf8_names(path: str) -> str:
    """y = relu(x) whose tensor names are bytes that are not UTF-8."""
    from ai_edge_litert import schema_py_generated as s

    F = s.TensorType.FLOAT32
    main = _subgraph(s, "main", [_tensor(s, b"x\xff\xfe", [1, 4], F, 1),
                                 _tensor(s, b"y\xc3\x28", [1, 4], F, 2)],
                     [_op(s, 0, [0], [1])], [0], [1])
    _write(path, _pack(_model(s, [_code(s, s.BuiltinOperator.RELU)], [main], 3)))
    return path


# -- ONNX -----------------------------------------------------------------------------

def _save_onnx(path, nodes, inputs, outputs, inits=(), opset=17):
    from onnx import helper

    graph = helper.make_graph(nodes, "hostile", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    _write(path, model.SerializeToString())
    return path


def onnx_loop_forever(path: str, trips: int = 1 << 62) -> str:
    """y = Loop(M=trips, cond=true) { v = relu(v) }: 2^62 iterations."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Relu", ["v_in"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])])
    return _save_onnx(path, [
        helper.make_node("Constant", [], ["M"], value=helper.make_tensor("M", TensorProto.INT64,
                                                                          [], [trips])),
        helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL,
                                                                          [], [True])),
        helper.make_node("Loop", ["M", "t", "x"], ["y"], body=body)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])


def onnx_external_data(path: str, location: str) -> str:
    """y = x + w, with w's data in an external file at ``location`` (which need not exist)."""
    from onnx import TensorProto, helper

    w = TensorProto()
    w.name, w.data_type = "w", TensorProto.FLOAT
    w.dims.extend([4])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    return _save_onnx(path, [helper.make_node("Add", ["x", "w"], ["y"])],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])


def onnx_bad_utf8_op(path: str) -> str:
    """y = relu(x) whose op type is bytes that are not UTF-8: the onnx checker's message
    quotes them, and turning that message into a Python string fails."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    _save_onnx(path, [node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    data = open(path, "rb").read().replace(b"Relu", b"R\xff\xfeu")
    _write(path, data)
    onnx.load_from_string(data)  # protobuf itself accepts the bytes
    return path


def onnx_bad_utf8_dim(path: str) -> str:
    """y = relu(x) with x's dynamic dim named by bytes that are not UTF-8: the checker
    does not look, ONNX Runtime loads it, and its input description fails to decode."""
    from onnx import TensorProto, helper

    _save_onnx(path, [helper.make_node("Relu", ["x"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    _write(path, open(path, "rb").read().replace(b"batch", b"b\xf4tch"))
    return path


def onnx_expand_bomb(path: str, n: int = 1024) -> str:
    """A constant-only chain that folds to one number through an n^3 float tensor:
    ConstantOfShape([n, n]) -> Expand to [n, n, n] (4 GiB at n=1024) -> ReduceMax, + x."""
    from onnx import TensorProto, helper

    def const(name, vals):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name, TensorProto.INT64, [len(vals)], vals))
    return _save_onnx(path, [
        const("s2", [n, n]), const("s3", [n, n, n]),
        helper.make_node("ConstantOfShape", ["s2"], ["c"], value=helper.make_tensor(
            "one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Expand", ["c", "s3"], ["e"], name="expand_bomb"),
        helper.make_node("ReduceMax", ["e"], ["r"], keepdims=0),
        helper.make_node("Add", ["x", "r"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])


def onnx_constant_of_shape_overflow(path: str) -> str:
    """ConstantOfShape([3, 2^62]): the element count overflows int64."""
    from onnx import TensorProto, helper

    return _save_onnx(path, [
        helper.make_node("Constant", [], ["s"], value=helper.make_tensor(
            "s", TensorProto.INT64, [2], [3, 1 << 62])),
        helper.make_node("ConstantOfShape", ["s"], ["c"], name="cos_overflow"),
        helper.make_node("ReduceMax", ["c"], ["r"], keepdims=0),
        helper.make_node("Add", ["x", "r"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])


def onnx_huge_declared_input(path: str, side: int = 30000) -> str:
    """y = relu(x), x declared 1x3xSIDExSIDE float32 (10 GiB at 30000)."""
    from onnx import TensorProto, helper

    shape = [1, 3, side, side]
    return _save_onnx(path, [helper.make_node("Relu", ["x"], ["y"])],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# name -> (builder, file name, outcomes edgert.load + one run may end in, with the default
# isolated check). "hang" and "crash" are never allowed.
RUNTIME_CASES: Dict[str, Tuple[Callable[[str], str], str, Tuple[str, ...]]] = {
    "tflite_while_forever": (tflite_while_forever, "while_forever.tflite", ("ModelFileError",)),
    "tflite_huge_input": (tflite_huge_input, "huge_input.tflite", ("ModelFileError",)),
    "tflite_bad_utf8_names": (tflite_bad_utf8_names, "bad_names.tflite", ("ModelFileError",)),
    "onnx_loop_forever": (onnx_loop_forever, "loop_forever.onnx", ("ModelFileError",)),
    "onnx_external_missing": (lambda p: onnx_external_data(p, "weights.bin"),
                              "ext_missing.onnx", ("ModelFileError",)),
    "onnx_external_escape": (lambda p: onnx_external_data(p, "../../../../etc/passwd"),
                             "ext_escape.onnx", ("ModelFileError",)),
    "onnx_huge_declared_input": (onnx_huge_declared_input, "huge_input.onnx",
                                 ("ModelFileError",)),
}


def build_runtime_cases(out_dir: str) -> Dict[str, str]:
    """Write every runtime case into ``out_dir``; name -> path."""
    return {name: builder(os.path.join(out_dir, fname))
            for name, (builder, fname, _) in RUNTIME_CASES.items()}


def expected(name: str) -> Tuple[str, ...]:
    return RUNTIME_CASES[name][2]


def random_bytes(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
