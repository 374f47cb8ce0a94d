"""QDQ ONNX: table extraction, stripping to float, and the round trip back to QDQ."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from quant_tables.errors import TableSourceError
from quant_tables.exporters.qdq_onnx import insert_qdq
from quant_tables.producers.qdq_onnx import extract_qdq

from .conftest import ort_run


@pytest.fixture(scope="module")
def extracted(qdq_onnx):
    return extract_qdq(qdq_onnx)


def test_table_holds_the_quantizer_parameters(qdq_onnx, extracted):
    proto = onnx.load(qdq_onnx)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    qs = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert qs, "the fixture model has Q nodes"
    for q in qs:
        name = q.input[0]
        entry = extracted.table.activations.get(name) or extracted.table.activations.get("y")
        assert entry.scale == pytest.approx(float(inits[q.input[1]]))
        assert entry.dtype == "int8"
    dqs = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert len(extracted.table.weights) == len(dqs) == 3
    for w in extracted.table.weights.values():
        assert w.axis == 0 and w.symmetric and w.per_channel


def test_stripped_model_is_float_and_equivalent(qdq_onnx, small_onnx, extracted, cal_data):
    m = extracted.model
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(ops)
    assert [o.name for o in m.graph.output] == ["y"] and [i.name for i in m.graph.input] == ["x"]
    assert all(numpy_helper.to_array(i).dtype == np.float32 for i in m.graph.initializer)
    x = cal_data[:16]
    ref = ort_run(small_onnx, x)
    got = ort_run(m, x)
    # weights are the dequantized int8 values: close to the float model, not equal
    assert 0 < np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    assert extracted.removed >= 10


def test_round_trip_reproduces_the_qdq_model_exactly(qdq_onnx, extracted, cal_data):
    back, notes = insert_qdq(extracted.model, extracted.table)
    x = cal_data[:16]
    np.testing.assert_array_equal(ort_run(back, x), ort_run(qdq_onnx, x))
    assert notes == []


def test_relu_folded_by_the_quantizer_is_restored(extracted):
    """onnxruntime drops a Relu whose quantized range starts at 0; stripping puts it back."""
    ops = [n.op_type for n in extracted.model.graph.node]
    relus = [n for n in extracted.model.graph.node if n.op_type == "Relu"]
    assert ops.count("Relu") == 2, ops
    restored = [n for n in relus if n.name.endswith("__restored_relu")]
    assert restored and all(n.output[0] in extracted.table.activations for n in restored)
    assert any("restored the ReLU" in n for n in extracted.notes)


def test_qoperator_models_are_refused(small_onnx, cal_data, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": cal_data[i:i + 1]} for i in range(4)])

        def get_next(self):
            return next(self._it, None)

    path = str(tmp_path / "qop.onnx")
    quantize_static(small_onnx, path, Reader(), quant_format=QuantFormat.QOperator)
    with pytest.raises(TableSourceError, match="QOperator format"):
        extract_qdq(path)


def test_float_weight_behind_q_and_dq(tmp_path):
    """W(float) -> Q -> DQ (torch.onnx export of fake-quant weights) folds into a float W."""
    from onnx import TensorProto, helper

    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    s = np.array([0.01, 0.02, 0.03], np.float32)
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["W", "s", "z"], ["Wq"], axis=0),
         helper.make_node("DequantizeLinear", ["Wq", "s", "z"], ["Wd"], axis=0),
         helper.make_node("MatMul", ["x", "Wd"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(s, "s"),
         numpy_helper.from_array(np.zeros(3, np.int8), "z")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    r = extract_qdq(model)
    inits = {i.name: numpy_helper.to_array(i) for i in r.model.graph.initializer}
    expect = np.clip(np.rint(w / s[:, None]), -128, 127) * s[:, None]
    np.testing.assert_allclose(inits["W"], expect, rtol=1e-6)
    assert set(inits) == {"W"} and r.table.weights["W"].axis == 0
    assert [n.op_type for n in r.model.graph.node] == ["MatMul"]
