"""A QDQ ONNX model handed straight to ``convert``: its Q/DQ pairs become the table."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from converters import convert
from quant_tables import QuantTable
from quant_tables.producers.qdq_onnx import extract_qdq

from .conftest import export, ort_run
from .int8_bounds import assert_near_simulation, depths


@pytest.fixture(scope="module")
def int8_report(qdq_onnx, tmp_path_factory):
    return convert(qdq_onnx, targets=("tflite", "mnn"), precision="int8",
                   out_dir=tmp_path_factory.mktemp("qdq_int8"), raise_on_error=False)


def test_int8_conversion_reproduces_the_qdq_simulation(int8_report, qdq_onnx, cal_data):
    """TFLite's int8 kernels compute what onnxruntime's QDQ simulation computes, within
    the int8 bound in output steps (converters.verify.int8_lsb_bound), with XNNPACK's
    kernels and with LiteRT's reference ones: the claim holds on AVX2, AVX-512 or ARM,
    where a cosine measured on one of them (0.9995 here, 0.9933 on an AVX2 EPYC) does
    not."""
    tfl = int8_report.target("tflite")
    assert tfl.error is None, tfl.error
    assert tfl.verification.passed, tfl.verification.failures
    x = cal_data[20:21]
    want = {"y": ort_run(qdq_onnx, x)}
    step = QuantTable.load(int8_report.out_dir + "/small_qdq.int8.quant.json"
                           ).activations["y"].scale
    depth = depths(int8_report.optimized_path)
    worst = assert_near_simulation(tfl.path, {"x": x}, want, {"y": step}, depth)
    print(f"\nint8 TFLite vs QDQ simulation, in output steps: {worst} (bound "
          f"{2 * depth['y']})")
    notes = " ".join(int8_report.source["notes"])
    assert "QDQ source" in notes and "own int8 simulation" in notes
    assert int8_report.precision["chosen"] == "int8"


def test_int8_mnn_quantizes_the_convolutions(int8_report, qdq_onnx, cal_data):
    mnn = int8_report.target("mnn")
    assert mnn.error is None, mnn.error
    assert any("layer(s) quantized by MNN" in n for n in mnn.notes)
    assert mnn.verification.passed, mnn.verification.failures
    x = cal_data[20:21]
    step = QuantTable.load(int8_report.out_dir + "/small_qdq.int8.quant.json"
                           ).activations["y"].scale
    assert_near_simulation(mnn.path, {"x": x}, {"y": ort_run(qdq_onnx, x)}, {"y": step},
                           depths(int8_report.optimized_path))


def test_a_qdq_file_converts_to_int8_unless_told_otherwise(qdq_onnx, tmp_path):
    """Q/DQ nodes in the graph mean int8, as TensorRT's explicit quantization reads them."""
    rep = convert(qdq_onnx, targets=("tflite",), out_dir=tmp_path)
    assert rep.precision["asked"] == "auto" and rep.precision["chosen"] == "int8"
    assert "QuantizeLinear/DequantizeLinear pairs" in rep.precision["why"]
    t = rep.target("tflite")
    assert t.precision == "int8" and t.path.endswith("small_qdq.int8.tflite")
    assert t.details["int8"]["float_ops"] == [] and t.verification.passed
    assert "precision: int8: the source holds" in rep.summary()


def test_float_conversion_keeps_the_table_for_later(qdq_onnx, cal_data, tmp_path):
    rep = convert(qdq_onnx, targets=("tflite",), out_dir=tmp_path, precision="fp32")
    assert rep.precision == {"asked": "fp32", "chosen": "fp32", "why": "fp32, as asked"}
    assert rep.target("tflite").verification.passed
    table = QuantTable.load(tmp_path / "small_qdq.qdq.quant.json")
    stripped = extract_qdq(qdq_onnx)
    assert set(table.activations) == set(stripped.table.activations)
    # what was converted is the model without Q/DQ (its weights hold the dequantized
    # values), in float: not the simulation
    import edgert
    x = cal_data[:1]
    got = edgert.load(rep.target("tflite").path).run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(stripped.model, x), rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(got - ort_run(qdq_onnx, x))) > 1e-4


def _quantize_static(float_path: str, qdq_path: str) -> str:
    """``float_path`` (one input ``x`` of 3x8x8 images) through onnxruntime's
    ``quantize_static``: QDQ, per-channel int8 weights, int8 activations, 8 seeded
    calibration images."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    data = np.random.default_rng(1).normal(size=(8, 3, 8, 8)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": data[i:i + 1]} for i in range(len(data))])

        def get_next(self):
            return next(self._it, None)

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(float_path, qdq_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    return qdq_path


def test_no_relu_is_invented_after_an_average_of_nonnegative_values(tmp_path):
    """conv -> ReLU -> global average pool: the pool's range starts at 0 because its
    input cannot be negative, not because a ReLU was folded away."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4)).eval()
    x = torch.randn(1, 3, 8, 8)
    float_path = export(net, str(tmp_path / "gap.onnx"), x)
    qdq_path = _quantize_static(float_path, str(tmp_path / "gap_qdq.onnx"))
    res = extract_qdq(qdq_path)
    ops = [n.op_type for n in res.model.graph.node]
    assert "GlobalAveragePool" in ops
    pool = next(n for n in res.model.graph.node if n.op_type == "GlobalAveragePool")
    assert not any(n.op_type == "Relu" and n.input[0] == pool.output[0]
                   for n in res.model.graph.node), ops
    rep = convert(qdq_path, targets=("tflite",), out_dir=tmp_path / "out")
    assert rep.precision["chosen"] == "int8" and rep.target("tflite").verification.passed


def test_ops_a_qdq_source_left_in_float_stay_float(tmp_path):
    """onnxruntime's ``quantize_static`` puts no Q/DQ pair on a Gelu's output (nor on
    GELU's Div when it is exported as Div/Erf): the QDQ model runs the Gelu, and the
    ReduceMean that reads its output, in float between a DequantizeLinear and a
    QuantizeLinear. That placement is the source's precision, so those ops stay float
    (it was a request for calibration data before), and both targets reproduce the QDQ
    simulation."""
    import torch
    import torch.nn as nn

    class GeluNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(nn.functional.gelu(self.conv(x)).mean((2, 3)))

    torch.manual_seed(0)
    float_path = export(GeluNet().eval(), str(tmp_path / "gelu.onnx"), torch.randn(1, 3, 8, 8))
    qdq_path = _quantize_static(float_path, str(tmp_path / "gelu_qdq.onnx"))
    rep = convert(qdq_path, targets=("tflite", "mnn"), out_dir=tmp_path / "out",
                  raise_on_error=False)
    assert rep.precision["chosen"] == "int8"
    notes = rep.source["notes"]
    kept = [n for n in notes if "the QDQ source computes in float" in n]
    assert len(kept) == 1 and kept[0].endswith("stay float: /Gelu, /ReduceMean"), notes
    for target in ("tflite", "mnn"):
        t = rep.target(target)
        assert t.error is None, t.error
        assert t.verification.passed, t.verification.failures
    table = QuantTable.load(rep.out_dir + "/gelu_qdq.int8.quant.json")
    floats = {o.node for o in table.overrides if o.reason == "computed in float in the QDQ source"}
    assert floats == {"/Gelu", "/ReduceMean"}, floats


@pytest.mark.parametrize("form", ["dynamic", "qoperator"])
def test_onnxruntime_integer_forms_are_refused_saying_what_to_pass(form, small_onnx, cal_data,
                                                                   tmp_path):
    """quantize_dynamic and the QOperator format put integer arithmetic in the graph, not
    Q/DQ pairs: each backend refused them node by node, listing every op it supports."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                          quantize_dynamic, quantize_static)

    from converters.errors import ConversionError

    path = str(tmp_path / f"{form}.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    if form == "dynamic":
        quantize_dynamic(small_onnx, path)
        match = (r"quantize_dynamic \(node '.*' \((DynamicQuantizeLinear|MatMulInteger|"
                 r"ConvInteger), and \d+ more\)\).*precision='int8_weights'")
    else:
        class Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter([{"x": cal_data[i:i + 1]} for i in range(4)])

            def get_next(self):
                return next(self._it, None)

        quantize_static(small_onnx, path, Reader(), quant_format=QuantFormat.QOperator)
        match = r"QOperator format \(node '.*' \(QLinear\w+.*QuantFormat.QDQ"
    with pytest.raises(ConversionError, match=match):
        convert(path, targets="mnn,tflite", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
