"""The flatbuffer rules that bite: schema version 3, buffer 0 empty, constant data on
16-byte boundaries, op versions by LiteRT's rules, SignatureDefs with the source names
(read back by edgert's runtime)."""
from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from onnx import helper

from tests.tflite.conftest import OpCase, build_model, const, convert_ir, litert_run, rt


def _read(path):
    from ai_edge_litert import schema_py_generated as s
    buf = open(path, "rb").read()
    return s, buf, s.Model.GetRootAs(buf, 0)


def _versions(path):
    s, _, m = _read(path)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return {names[m.OperatorCodes(i).BuiltinCode()]: m.OperatorCodes(i).Version()
            for i in range(m.OperatorCodesLength())}


def _conv_model():
    case = OpCase("conv", "Conv", [rt("x", (1, 3, 8, 8)), const("w", np.ones((4, 3, 3, 3),
                                                                               np.float32)),
                                   const("b", np.arange(4, dtype=np.float32))],
                  {"pads": [1, 1, 1, 1]})
    return build_model(case)


def test_file_structure(tmp_path):
    from edgert.tflite_file import read_tflite
    model, _ = _conv_model()
    res = convert_ir(model, tmp_path / "c.tflite")
    s, buf, m = _read(res.path)
    assert buf[4:8] == b"TFL3" and m.Version() == 3
    assert m.Buffers(0).DataLength() == 0
    for i in range(1, m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(flatbuffers.number_types.UOffsetTFlags.py_type(b._tab.Offset(4)))
            assert start % 16 == 0, (i, start)
    summary = read_tflite(buf)                   # edgert's bounds-checked structural reader
    assert summary.signature_keys == ["serving_default"]
    assert summary.op_counts["CONV_2D"] == 1
    # deprecated_builtin_code is capped at 127 (GELU is 150)
    gelu, _ = build_model(OpCase("g", "Gelu", [rt("x", (2, 3))], opset=20))
    g = convert_ir(gelu, tmp_path / "g.tflite")
    _, _, gm = _read(g.path)
    assert (gm.OperatorCodes(0).BuiltinCode(), gm.OperatorCodes(0).DeprecatedBuiltinCode()) == \
        (150, 127)


def test_signature_carries_source_names(tmp_path):
    import edgert
    model, _ = build_model(OpCase("n", "Add", [rt("image", (1, 4)), rt("bias", (1, 4), 1)]))
    res = convert_ir(model, tmp_path / "n.tflite")
    sess = edgert.load(str(res.path), check="structure")
    assert [i.name for i in sess.inputs] == ["image", "bias"]
    assert [o.name for o in sess.outputs] == ["y0"]


@pytest.mark.parametrize("case,op,version", [
    (OpCase("dw_dilated", "Conv", [rt("x", (1, 4, 9, 9)), const("w", np.ones((4, 1, 3, 3),
                                                                            np.float32))],
            {"group": 4, "dilations": [2, 2]}), "DEPTHWISE_CONV_2D", 2),
    (OpCase("grouped", "Conv", [rt("x", (1, 4, 5, 5)), const("w", np.ones((4, 2, 3, 3),
                                                                         np.float32))],
            {"group": 2}), "CONV_2D", 6),
    (OpCase("fc_keep_dims", "MatMul", [rt("x", (2, 3, 4)), const("w", np.ones((4, 5),
                                                                             np.float32))]),
     "FULLY_CONNECTED", 5),
    (OpCase("transpose_5d", "Transpose", [rt("x", (1, 2, 3, 4, 5))], {"perm": [0, 4, 1, 2, 3]}),
     "TRANSPOSE", 4),
    (OpCase("resize_half_pixel", "Resize", [rt("x", (1, 2, 3, 3)), ("", None, True),
                                            const("s", np.array([1, 1, 2, 2], np.float32))],
            {"mode": "linear"}), "RESIZE_BILINEAR", 3),
    (OpCase("tconv_bias", "ConvTranspose", [rt("x", (1, 2, 3, 3)),
                                            const("w", np.ones((2, 2, 2, 2), np.float32)),
                                            const("b", np.ones(2, np.float32))],
            {"strides": [2, 2]}), "TRANSPOSE_CONV", 3),
    (OpCase("pad_5d", "Pad", [rt("x", (1, 2, 2, 2, 2)),
                              const("p", np.array([0, 1, 0, 0, 0, 0, 1, 0, 0, 0], np.int64))]),
     "PAD", 4),
])
def test_op_versions_follow_litert_rules(case, op, version, tmp_path):
    model, feeds = build_model(case)
    res = convert_ir(model, tmp_path / "v.tflite")
    assert _versions(res.path)[op] == version
    litert_run(res.path, feeds)          # and the interpreter accepts that version


def test_identical_small_constants_are_shared(tmp_path):
    import onnx
    from onnx import numpy_helper
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["a", "w"], ["ca"]), helper.make_node("Conv", ["b", "w"], ["cb"]),
             helper.make_node("Concat", ["ca", "cb"], ["y"], axis=1)]
    ins = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 2, 4, 4]) for n in "ab"]
    g = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info(
        "y", onnx.TensorProto.FLOAT, None)], initializer=[w])
    model = onnx.shape_inference.infer_shapes(helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8))
    res = convert_ir(model, tmp_path / "c.tflite")
    s, _, m = _read(res.path)
    sg = m.Subgraphs(0)
    names = [sg.Tensors(i).Name().decode() for i in range(sg.TensorsLength())]
    perms = [n for n in names if n.startswith("perm")]
    assert res.op_counts["TRANSPOSE"] == 3 and len(perms) == 2    # NCHW->NHWC, NHWC->NCHW
