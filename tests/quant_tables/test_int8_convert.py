"""Full int8 through ``converters.convert``: QAT on real data, calibration, tables that
do not fit, per-layer debugging. Real converters and runtimes throughout."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.flow.inputs import held_out_indices
from quant_tables import ActivationQuant, LayerOverride, QuantTable

from .conftest import small_cnn
from .int8_bounds import assert_near_simulation, depths

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """QAT on scikit-learn's digits -> int8 TFLite and MNN (examples/quantize_digits.py)."""
    from examples import quantize_digits

    out = str(tmp_path_factory.mktemp("digits"))
    return quantize_digits.run(out, load_check="structure")


def test_digits_qat_accuracy_and_agreement(digits):
    acc, agree = digits.accuracy, digits.agreement
    assert acc["float (PyTorch)"] >= 0.97
    for target in ("int8 tflite", "int8 mnn"):
        assert acc["float (PyTorch)"] - acc[target] <= 0.005, (target, acc)
        assert agree[target] >= 0.99, (target, agree)


def test_digits_models_are_int8(digits):
    import edgert

    t = digits.report.target("tflite")
    assert t.details["int8"]["int8_ops"] >= 7 and t.details["int8"]["float_ops"] == []
    assert t.op_counts["QUANTIZE"] == 1 and t.op_counts["DEQUANTIZE"] == 1
    sess = edgert.load(t.path, check="structure")
    assert sess.inputs[0].dtype == np.float32           # float I/O, int8 inside
    m = digits.report.target("mnn")
    assert any("5 layer(s) quantized" in n for n in m.notes), m.notes
    fp32 = _fp32_size(digits)
    assert t.size_bytes < 0.35 * fp32
    assert m.size_bytes < 0.85 * fp32   # MNN keeps the FC weights in float too (measured)
    table = QuantTable.load(digits.paths["table"])
    assert table.provenance.producer == "qat_torch" and len(table.weights) == 5
    assert any("QAT: 6 activation and 5 weight" in n for n in digits.report.source["notes"])


def _fp32_size(digits) -> int:
    import os
    import onnx
    from onnx import numpy_helper

    m = onnx.load(os.path.join(digits.report.out_dir, "digits.optimized.onnx"))
    return sum(numpy_helper.to_array(i).nbytes for i in m.graph.initializer)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, cal_data):
    """The small CNN converted to int8 by calibration alone, with int8 I/O for TFLite."""
    from converters import convert

    out = tmp_path_factory.mktemp("cal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(small_cnn(), targets=("tflite", "mnn"), precision="int8",
                      example_inputs=(torch.from_numpy(cal_data[:1]),), out_dir=str(out),
                      calibration_data=cal_data, load_check="structure", raise_on_error=False,
                      exporter="torchscript")
        rep8 = convert(small_cnn(), targets=("tflite",), precision="int8", io_dtype="int8",
                       name="io8", example_inputs=(torch.from_numpy(cal_data[:1]),),
                       out_dir=str(out), quant_table=out / "sequential.int8.quant.json",
                       load_check="structure", exporter="torchscript")
    return out, rep, rep8


def test_held_out_samples_are_spread_over_the_data():
    assert held_out_indices(1) == [] and held_out_indices(2) == [1]
    assert held_out_indices(10) == [2, 7]
    assert held_out_indices(100) == [6, 18, 31, 43, 56, 68, 81, 93]     # at most 8


def _sim(out, x):
    from converters.quant_debug import _sim_tensors
    import onnx

    proto = onnx.load(str(out / "sequential.optimized.onnx"))
    table = QuantTable.load(out / "sequential.int8.quant.json")
    name = proto.graph.input[0].name
    sim = _sim_tensors(proto, table, {name: x})
    return sim[proto.graph.output[0].name], table, name


def test_calibrated_int8_matches_the_table_simulation(calibrated, cal_data):

    out, rep, rep8 = calibrated
    assert rep.ok, rep.summary()
    x = cal_data[5:6]
    sim, table, in_name = _sim(out, x)
    name = rep.source["outputs"][0]
    step = table.activations[name].scale
    depth = depths(str(out / "sequential.optimized.onnx"))
    for t in rep.targets:   # within int8_lsb_bound steps, with each kernel family
        assert_near_simulation(t.path, {in_name: x}, {name: sim}, {name: step}, depth)
    # verified on held-out calibration samples, not on noise
    v = rep.target("tflite").verification
    assert [s for s in v.input_sets if s.startswith("held-out")] == [
        f"held-out calibration sample {i + 1} of 48" for i in held_out_indices(48)]
    assert len(v.input_sets) == 1 + 8                 # the example input, 8 held out
    assert any("40 of 48 feeds calibrate, 8 held out for verification" in n
               for n in rep.source["notes"])


def test_int8_io(calibrated, cal_data):
    import edgert

    out, rep, rep8 = calibrated
    t = rep8.target("tflite")
    assert "QUANTIZE" not in t.op_counts and "DEQUANTIZE" not in t.op_counts
    sess = edgert.load(t.path, check="structure")
    table = QuantTable.load(out / "sequential.int8.quant.json")
    inp, outp = sess.inputs[0], sess.outputs[0]
    assert inp.dtype == np.int8 and outp.dtype == np.int8
    assert inp.quantization.scale[0] == pytest.approx(table.activations[inp.name].scale)
    assert inp.quantization.zero_point[0] == table.activations[inp.name].zero_point
    y = sess.run({inp.name: cal_data[5:6]})[outp.name]       # float in, dequantized out
    sim, _, _ = _sim(out, cal_data[5:6])
    assert np.abs(y - sim).max() <= 2.01 * outp.quantization.scale[0]


def _convert(tmp_path, table=None, data=None, target=("tflite",), **kw):
    from converters import convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert(small_cnn(), targets=target, precision="int8",
                       example_inputs=(torch.zeros(1, 1, 8, 8),), out_dir=str(tmp_path),
                       quant_table=table, calibration_data=data, load_check="structure",
                       exporter="torchscript", **kw)


def test_missing_tensors_without_data_are_listed(tmp_path, calibrated):
    out, _, _ = calibrated
    table = QuantTable.load(out / "sequential.int8.quant.json")
    relu = sorted(t for t in table.activations if "Relu" in t)
    for name in relu:
        del table.activations[name]
    with pytest.raises(ConversionError) as err:
        _convert(tmp_path, table)
    msg = str(err.value)
    assert f"lacks {len(relu) + 2} tensor(s)" in msg or "lacks" in msg
    assert all(r in msg for r in relu) and "calibration_data" in msg


def test_missing_tensors_are_calibrated_and_unknown_names_warned(tmp_path, calibrated, cal_data):
    out, _, _ = calibrated
    table = QuantTable.load(out / "sequential.int8.quant.json")
    relu = sorted(t for t in table.activations if "Relu" in t)[0]
    del table.activations[relu]
    table.activations["not_in_graph"] = ActivationQuant(0.1, 0)
    with pytest.warns(UserWarning, match="names 1 tensor.*not_in_graph"):
        from converters import convert
        rep = convert(small_cnn(), targets=("tflite",), precision="int8",
                      example_inputs=(torch.zeros(1, 1, 8, 8),), out_dir=str(tmp_path),
                      quant_table=table, calibration_data=cal_data, load_check="structure",
                      exporter="torchscript")
    notes = " ".join(rep.source["notes"])
    assert "calibrated" in notes and "not_in_graph" in notes
    final = QuantTable.load(tmp_path / "sequential.int8.quant.json")
    assert final.activations[relu].source.startswith("calibration")


def test_float_override_is_honored_and_reported(tmp_path, calibrated):
    out, _, _ = calibrated
    table = QuantTable.load(out / "sequential.int8.quant.json")
    table.overrides.append(LayerOverride(op_type="Gemm", reason="keep the classifier exact"))
    rep = _convert(tmp_path, table, target=("tflite", "mnn"))
    t = rep.target("tflite")
    floats = t.details["int8"]["float_ops"]
    assert [f["op"] for f in floats] == ["FULLY_CONNECTED"]
    assert floats[0]["reason"] == "kept in float by the table"
    assert t.op_counts["DEQUANTIZE"] == 1 and t.op_counts["FULLY_CONNECTED"] == 1
    m = rep.target("mnn")
    assert any("kept in float by the table" in n for n in m.notes), m.notes


def test_int8_needs_a_table_or_data(tmp_path):
    with pytest.raises(ConversionError, match="needs a quantization table"):
        _convert(tmp_path)


@pytest.mark.parametrize("target", ["sim", "tflite", "mnn"])
def test_quant_debug_names_the_worst_layers(calibrated, target, cal_data):
    from converters.quant_debug import debug_int8

    out, rep, _ = calibrated
    r = debug_int8(str(out / "sequential.optimized.onnx"), out / "sequential.int8.quant.json",
                   data=cal_data[3:4], target=target)
    names = [l.tensor for l in r.layers]
    assert rep.source["outputs"][0] in names
    worst = r.worst(3)
    assert len(worst) == 3 and worst[0].db_lost >= worst[-1].db_lost >= 0
    assert all(l.cosine > 0.97 for l in r.layers), [(l.tensor, l.cosine) for l in r.layers]
    if target != "sim":   # the Conv before a fused Relu does not exist in the int8 model
        assert any("Conv" in m for m in r.missing)


def test_quant_debug_finds_a_broken_layer(calibrated, cal_data):
    """Give one layer a range 50x too small: quant-debug must name it first."""
    from converters.quant_debug import debug_int8

    out, rep, _ = calibrated
    table = QuantTable.load(out / "sequential.int8.quant.json")
    victim = sorted(t for t in table.activations if "Relu" in t)[-1]
    table.activations[victim].scale /= 50
    r = debug_int8(str(out / "sequential.optimized.onnx"), table, data=cal_data[3:4], target="sim")
    assert r.worst(1)[0].tensor == victim


def _masked_attention(tmp_path):
    """scores (1x4x8) + a causal-style mask constant (0 / float32 min) -> Softmax: the
    way attention masks reach an exported graph (HF models fill with finfo.min)."""
    import onnx
    from onnx import TensorProto, helper as h, numpy_helper

    mask = np.where(np.arange(8)[None, None, :] > 4, np.finfo(np.float32).min,
                    0.0).astype(np.float32)
    graph = h.make_graph(
        [h.make_node("Add", ["x", "mask"], ["masked"]),
         h.make_node("Softmax", ["masked"], ["y"], axis=-1)], "masked",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [numpy_helper.from_array(mask, "mask")])
    path = str(tmp_path / "masked.onnx")
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_an_attention_mask_neither_spoils_the_ranges_nor_aborts_litert(tmp_path):
    """The masked scores hold -3.4e38: calibrated over them, their scale was 1.3e36 (every
    real score 0), and LiteRT's int8 ADD of such a scale aborted the process in its Prepare
    (GPT-2 int8: SIGABRT in the verification child). Mask values are left out of ranges,
    noted; an ADD LiteRT cannot rescale stays float, with the reason."""
    from converters import convert

    path = _masked_attention(tmp_path)
    data = np.random.default_rng(0).normal(size=(16, 1, 4, 8)).astype(np.float32) * 3
    rep = convert(path, "tflite", precision="int8", calibration_data=list(data),
                  out_dir=tmp_path / "out", raise_on_error=False)
    t = rep.target("tflite")
    assert t.error is None, t.error
    table = QuantTable.load(tmp_path / "out" / "masked.int8.quant.json")
    assert table.activations["masked"].scale < 1.0           # data values only (|x| < 15)
    assert any("mask fill values" in n and "masked" in n for n in rep.source["notes"])
    float_adds = [f for f in t.details["int8"]["float_ops"] if f["op"] == "ADD"]
    assert float_adds and "cannot rescale" in float_adds[0]["reason"], t.details["int8"]
    assert t.verification.passed, t.verification.failures


def test_a_normalized_sum_stays_float_so_small_tokens_survive(tmp_path):
    """LayerNorm(a + b) read out at a token 200x smaller than the others (a ViT's class
    or detection tokens beside its patch tokens): with the ADD in int8, that token's sum
    is a few int8 steps, which LayerNorm divides by its own tiny spread (cosine 0.85;
    YOLOS's logits -0.82). The ADD whose output is normalized computes in float."""
    import torch

    from converters import convert
    from converters.tflite.full_int8 import NORM_INPUT

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln, self.head = torch.nn.LayerNorm(32), torch.nn.Linear(32, 10)

        def forward(self, a, b):
            return self.head(self.ln(a + b)[:, 0])

    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        a, b = (torch.randn(1, 9, 32, generator=g) * 4 for _ in range(2))
        a[:, 0] *= 0.02
        b[:, 0] *= 0.02
        return a, b

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(Block().eval(), "tflite", example_inputs=sample(99), precision="int8",
                      calibration_data=[sample(s) for s in range(8)], out_dir=tmp_path)
    t = rep.target("tflite")
    assert [f["op"] for f in t.details["int8"]["float_ops"] if f["reason"] == NORM_INPUT] \
        == ["ADD"]
    assert t.verification.passed and t.verification.outputs[0].cosine > 0.999
    assert t.details["int8"]["int8_ops"] >= 1          # the head still runs in int8


def test_int8_maximum_and_minimum_compare_in_one_scale(tmp_path):
    """LiteRT's int8 MAXIMUM/MINIMUM compare raw int8 values: inputs of other scales
    picked the wrong element (cosine 0.56 and 0.71 against float). Their inputs are
    requantized to the output's parameters, as CONCATENATION's are."""
    import torch

    from converters import convert

    class MaxMin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

        def forward(self, x):
            a, b = self.a(x) * 5, self.b(x)            # ranges 5x apart
            return torch.maximum(a, b), torch.minimum(a, b), torch.maximum(b, torch.tensor(0.3))

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(MaxMin().eval(), "tflite", example_inputs=(torch.randn(1, 16, generator=g),),
                      precision="int8", calibration_data=[torch.randn(1, 16, generator=g)
                                                          for _ in range(16)],
                      out_dir=tmp_path)
    t = rep.target("tflite")
    assert t.details["int8"]["float_ops"] == [] and t.details["int8"]["requantize_ops"] >= 1
    assert t.verification.passed, t.verification.failures
    assert min(o.cosine for o in t.verification.outputs) > 0.99
