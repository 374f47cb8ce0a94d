"""``edgert ops``: the support table of each conversion target, as the registry has it."""
from __future__ import annotations

import json

from edgert.cli import main


def test_ops_tflite_json(capsys):
    assert main(["ops", "--target", "tflite", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["onnx_op"]: r for r in data["ops"]}
    assert data["target"] == "tflite"
    assert rows["Conv"]["emits"] == ["CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "RESHAPE",
                                     "RELU_0_TO_1"]
    assert rows["Conv"]["layout"] == "spatial" and rows["Conv"]["node_checks"]
    assert rows["MatMul"]["layout"] == "matmul" and rows["Reshape"]["layout"] == "reshape"
    assert rows["Gelu"]["opsets"] == "20+" and "ai.edgert::Gelu" in rows
    assert rows["LSTM"]["family"] == "recurrent"
    assert rows["Erf"]["family"] == "decomposed" and "erf" in rows["Erf"]["description"]
    assert rows["Mish"]["family"] == "decomposed" and "tanh(softplus" in rows["Mish"]["description"]
    assert rows["Einsum"]["family"] == "decomposed"


def test_ops_filter_and_unknown_op(capsys):
    assert main(["ops", "--op", "softmax", "--json"]) == 0
    assert [r["onnx_op"] for r in json.loads(capsys.readouterr().out)["ops"]] == ["Softmax"]
    assert main(["ops", "--op", "Unique"]) == 2
    err = capsys.readouterr().err
    assert "tflite takes no ONNX op 'Unique'" in err and "Supported ops: Abs, " in err


def test_ops_table_and_mnn(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "tflite:" in out and "CONV_2D" in out
    assert main(["ops", "--target", "mnn", "--json"]) == 0
    mnn = {r["onnx_op"]: r for r in json.loads(capsys.readouterr().out)["ops"]}
    assert {"Conv", "Gemm", "LSTM"} <= set(mnn) and "decomposed" not in mnn["Selu"]
    assert mnn["Mish"]["decomposed"] == "x * tanh(softplus(x))"
    assert "exp(-|x|)" in mnn["Softplus"]["decomposed"]     # MNN's own overflows
