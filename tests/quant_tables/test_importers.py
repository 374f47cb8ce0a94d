"""AIMET encodings and TensorRT calibration caches into edgert tables."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from quant_tables.errors import TableError
from quant_tables.importers import get_importer, importer_names
from quant_tables.importers.aimet import import_aimet
from quant_tables.importers.tensorrt import hex_to_float, import_tensorrt

# the examples of AIMET's encoding specification (0.4.0 layout), trimmed
AIMET_LEGACY = {
    "version": "0.4.0",
    "activation_encodings": {
        "20": [{"bitwidth": 8, "is_symmetric": "False", "max": 2.6086959838867188,
                "min": -2.109158515930176, "offset": -114.0, "scale": 0.018501389771699905}],
        "21": [{"bitwidth": 16, "dtype": "float", "is_symmetric": "False"}],
    },
    "param_encodings": {
        "conv2.weight": [{"bitwidth": 8, "is_symmetric": "True", "offset": -128.0,
                          "scale": 0.0004936, "min": -0.0632, "max": 0.0627},
                         {"bitwidth": 8, "is_symmetric": "True", "offset": -128.0,
                          "scale": 0.0005, "min": -0.064, "max": 0.0635}],
        "fc1.weight": [{"bitwidth": 8, "is_symmetric": "False", "offset": -127.0,
                        "scale": 0.0004367}],
    },
}

AIMET_V1 = {
    "version": "1.0.0",
    "activation_encodings": [
        {"name": "input", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": False, "bw": 8,
         "scale": [0.031], "offset": [0.0]},
        {"name": "layer1_output", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": True,
         "bw": 8, "scale": [0.025], "offset": [-128.0]},
        {"name": "wide", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": False, "bw": 16,
         "scale": [6.05e-05], "offset": [-35799]},
    ],
    "param_encodings": [
        {"name": "conv1.weight", "dtype": "INT", "enc_type": "PER_CHANNEL", "is_sym": True,
         "bw": 8, "scale": [0.012, 0.015, 0.011], "offset": [-128.0, -128.0, -128.0]},
        {"name": "proj.weight", "dtype": "INT", "enc_type": "PER_CHANNEL", "is_sym": True,
         "bw": 4, "scale": [0.04, 0.039], "offset": [-8, -8], "axis": 1},
    ],
    "excluded_layers": ["head/Softmax"],
    "quantizer_args": {"activation_bitwidth": 8},
}


def test_aimet_legacy_layout():
    t = import_aimet(AIMET_LEGACY)
    a = t.activations["20"]
    # real = scale * (q + offset), q in [0, 255]  ->  uint8 with zero point -offset
    assert (a.dtype, a.zero_point, a.scale) == ("uint8", 114, 0.018501389771699905)
    assert a.real_range[0] == pytest.approx(-2.109158515930176, rel=1e-6)
    assert a.min == -2.109158515930176
    assert t.overrides[0].tensor == "21" and "float16" in t.overrides[0].reason
    w = t.weights["conv2.weight"]
    assert (w.dtype, w.zero_point, w.axis, w.symmetric) == ("int8", (0, 0), 0, True)
    assert w.scale == (0.0004936, 0.0005)
    fc = t.weights["fc1.weight"]
    assert (fc.dtype, fc.zero_point, fc.axis) == ("uint8", (127,), None)
    assert t.provenance.producer == "aimet" and t.provenance.method == "AIMET encodings 0.4.0"


def test_aimet_v1_layout():
    t = import_aimet(AIMET_V1)
    assert (t.activations["input"].dtype, t.activations["input"].zero_point) == ("uint8", 0)
    assert (t.activations["layer1_output"].dtype, t.activations["layer1_output"].zero_point) == ("int8", 0)
    assert (t.activations["wide"].dtype, t.activations["wide"].zero_point) == ("uint16", 35799)
    c = t.weights["conv1.weight"]
    assert c.scale == (0.012, 0.015, 0.011) and c.axis == 0 and c.dtype == "int8"
    p = t.weights["proj.weight"]
    assert (p.dtype, p.axis, p.zero_point) == ("int4", 1, (0, 0))
    assert t.overrides[0].node == "head/Softmax"
    assert t.provenance.details["quantizer_args"] == {"activation_bitwidth": 8}


def test_aimet_axes_from_the_model(small_onnx):
    import onnx
    from quant_tables.layer_weights import layer_weights

    gemm = [lw for lw in layer_weights(onnx.load(small_onnx)) if lw.op_type == "Gemm"][0]
    doc = {"activation_encodings": {}, "param_encodings": {
        gemm.name: [{"bitwidth": 8, "is_symmetric": "True", "offset": -128, "scale": 0.01}] * 10}}
    assert import_aimet(doc, model=small_onnx).weights[gemm.name].axis == gemm.axis


@pytest.mark.parametrize("doc, message", [
    ({"version": "2.0.0", "activation_encodings": []}, "version 2.0.0 is not supported"),
    ({"encodings": []}, "not AIMET encodings"),
    ({"activation_encodings": {"a": [{"bitwidth": 8, "offset": 0, "scale": 0.1},
                                     {"bitwidth": 8, "offset": 0, "scale": 0.1}]}},
     "activation 'a' has 2 encodings"),
    ({"version": "1.0.0", "param_encodings": [{"name": "w", "dtype": "INT", "enc_type": "PER_BLOCK",
                                               "bw": 4, "scale": [0.1], "offset": [-8]}]},
     "tensor 'w' uses PER_BLOCK"),
    ({"activation_encodings": {"a": [{"bitwidth": 8, "offset": 0, "scale": -0.1}]}},
     r"activations\['a'\]\['scale'\]"),
    ({"activation_encodings": {"a": [{"bitwidth": 8, "offset": 40, "scale": 0.1}]}},
     "activation 'a': zero_point -40 is out of range for uint8"),
    ({"activation_encodings": {"a": [{"bitwidth": 8, "offset": 0}]}},
     "tensor 'a' has a missing or non-numeric scale"),
])
def test_aimet_errors_name_the_problem(doc, message):
    with pytest.raises(TableError, match=message):
        import_aimet(doc)


def _hex(f: float) -> str:
    return "%x" % struct.unpack(">I", struct.pack(">f", f))[0]


def test_tensorrt_cache(tmp_path):
    path = tmp_path / "calib.cache"
    path.write_text("TRT-8601-EntropyCalibration2\n"
                    f"input: {_hex(0.0078125)}\n"
                    f"/conv1/Conv_output_0: {_hex(0.0423)}\n"
                    f"(Unnamed Layer* 3) [Activation]_output: {_hex(0.019)}\n")
    t = get_importer("tensorrt")(str(path)).table
    assert t.activations["input"].scale == 0.0078125
    assert t.activations["/conv1/Conv_output_0"].scale == pytest.approx(0.0423)
    assert t.activations["(Unnamed Layer* 3) [Activation]_output"].zero_point == 0
    assert t.activations["input"].real_range == pytest.approx((-128 * 0.0078125, 127 * 0.0078125))
    assert t.provenance.method == "TensorRT EntropyCalibration2 (TRT 8601)"
    assert len(t.provenance.source_sha256) == 64
    assert hex_to_float("3c010204") == pytest.approx(0.007874, rel=1e-3)
    assert hex_to_float("0") == 0.0


@pytest.mark.parametrize("text, message", [
    ("something else\nx: 3c010204\n", "not a TensorRT cache header"),
    ("TRT-8601-EntropyCalibration2\nx = 3c010204\n", "line 2 is 'x = 3c010204'"),
    ("TRT-8601-EntropyCalibration2\nx: zz\n", "line 2"),
    (f"TRT-8601-EntropyCalibration2\nx: {_hex(float('nan'))}\n", "activation 'x': scale is NaN"),
    (f"TRT-8601-EntropyCalibration2\nx: {_hex(-0.5)}\n", r"activations\['x'\]\['scale'\]"),
    ("", "empty calibration cache"),
])
def test_tensorrt_errors(text, message):
    with pytest.raises(TableError, match=message):
        import_tensorrt("calib.cache", text=text)


def test_registry():
    assert importer_names() == ["aimet", "tensorrt", "qdq"]
    from edgert.errors import UnsupportedOptionError
    with pytest.raises(UnsupportedOptionError, match="sources: aimet, tensorrt, qdq"):
        get_importer("snpe")


def test_aimet_from_file(tmp_path):
    path = tmp_path / "enc.json"
    path.write_text(json.dumps(AIMET_V1))
    r = get_importer("aimet")(str(path))
    assert r.table.provenance.source == "enc.json" and len(r.table.weights) == 2
    assert np.isclose(r.table.weights["conv1.weight"].scales_for(3), [0.012, 0.015, 0.011]).all()


def test_qdq_import_refuses_what_is_not_a_qdq_model(small_onnx, tmp_path):
    """An onnxruntime quantize_dynamic model imported "from qdq" wrote an empty table and
    a "float" model still holding its integer ops, exit 0; a float model gave an empty
    table the same way. Both are refused, saying why."""
    import logging

    from onnxruntime.quantization import quantize_dynamic

    from quant_tables.errors import TableSourceError

    dyn = str(tmp_path / "dyn.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(small_onnx, dyn)
    importer = get_importer("qdq")
    with pytest.raises(TableSourceError, match=r"quantize_dynamic \(node .*int8_weights"):
        importer(dyn)
    with pytest.raises(TableSourceError, match="no QuantizeLinear/DequantizeLinear node"):
        importer(small_onnx)
