"""The quantization-table format: round trips, and every validation naming the tensor."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from quant_tables.errors import TableError
from quant_tables import ActivationQuant, LayerOverride, QuantTable, WeightQuant, load_table
from quant_tables.validate import check_against_graph, load_schema


def _table() -> QuantTable:
    return QuantTable(
        activations={"x": ActivationQuant(0.02, -3, "int8", min=-2.5, max=2.6),
                     "h": ActivationQuant(0.01, 0, "uint8", quant_min=0, quant_max=127)},
        weights={"w": WeightQuant([0.1, 0.2, 0.3], 0, axis=0, symmetric=True,
                                  quant_min=-127, quant_max=127),
                 "fc": WeightQuant(0.05, 0)},
        overrides=[LayerOverride(op_type="Softmax", reason="accuracy")])


def _dict() -> dict:
    return json.loads(_table().to_json())


def test_round_trip_through_a_file(tmp_path):
    path = tmp_path / "t.json"
    _table().save(path)
    back = QuantTable.load(path)
    assert back.activations["h"].qrange == (0, 127)
    assert back.activations["x"].real_range == pytest.approx((0.02 * -125, 0.02 * 130))
    assert back.weights["w"].scale == (0.1, 0.2, 0.3) and back.weights["w"].axis == 0
    assert back.weights["fc"].axis is None and back.weights["fc"].scales_for(4).tolist() == [0.05] * 4
    assert back.overrides[0].matches("n", "Softmax", []) and not back.overrides[0].matches("n", "Relu", [])
    assert back.to_dict()["activations"] == _table().to_dict()["activations"]
    assert isinstance(load_table(path), QuantTable)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["activations"]["x"].update(scale=math.nan), r"activation 'x': scale is NaN"),
    (lambda d: d["activations"]["x"].update(scale=-0.5),
     r"activations\['x'\]\['scale'\].*minimum of 0"),
    (lambda d: d["activations"]["x"].update(scale=0), r"activations\['x'\]\['scale'\]"),
    (lambda d: d["activations"]["h"].update(zero_point=300),
     r"activation 'h': zero_point 300 is out of range for uint8 \[0, 255\]"),
    (lambda d: d["activations"]["x"].update(zero_point=-129),
     r"activation 'x': zero_point -129 is out of range for int8"),
    (lambda d: d["activations"]["h"].update(zero_point=200),
     r"activation 'h': zero_point 200 is outside \[quant_min, quant_max\] = \[0, 127\]"),
    (lambda d: d["weights"]["w"].update(scale=[0.1, math.inf, 0.2]), r"weight 'w': scale\[1\] is infinite"),
    (lambda d: d["weights"]["w"].update(axis=None), r"weight 'w': 3 scales \(per channel\) need an axis"),
    (lambda d: d["weights"]["w"].update(zero_point=[0, 0]), r"weight 'w': 2 zero points for 3 scales"),
    (lambda d: d["weights"]["w"].update(zero_point=[0, 1, 0]),
     r"weight 'w': symmetric signed weights need zero_point 0"),
    (lambda d: d["weights"]["fc"].update(bits=9), r"weight 'fc': bits 9 do not fit dtype int8"),
    (lambda d: d["activations"]["x"].update(zp=1), r"activations\['x'\]: unknown field 'zp'"),
    (lambda d: d["activations"]["x"].update(dtype="float8"), r"activations\['x'\]\['dtype'\]"),
    (lambda d: d["activations"]["x"].update(min=3.0, max=1.0), r"activation 'x': min 3.0 is above max 1.0"),
    (lambda d: d["overrides"].append({"precision": "float"}), r"overrides\[1\]"),
])
def test_invalid_entries_name_the_tensor(edit, message):
    d = _dict()
    edit(d)
    with pytest.raises(TableError, match=message):
        QuantTable.from_dict(d)


def test_all_problems_are_reported_together():
    d = _dict()
    d["activations"]["x"]["scale"] = math.nan
    d["weights"]["fc"]["scale"] = -1
    with pytest.raises(TableError) as err:
        QuantTable.from_dict(d)
    assert "2 problems" in str(err.value)
    assert "'x'" in str(err.value) and "'fc'" in str(err.value)


def test_header_errors(tmp_path):
    d = _dict()
    d["version"] = 2
    with pytest.raises(TableError, match="version 2 is newer than this edgert reads"):
        QuantTable.from_dict(d)
    d = _dict()
    d["format"] = "something"
    with pytest.raises(TableError, match="not an edgert.quant-table file"):
        QuantTable.from_dict(d)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "edgert.quant-table",\n "version": 1,,}')
    with pytest.raises(TableError, match=r"not valid JSON \(line 2"):
        QuantTable.load(bad)
    with pytest.raises(TableError, match="no such table file"):
        QuantTable.load(tmp_path / "missing.json")


def test_nan_written_by_hand_is_caught(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(_table().to_json().replace('"scale": 0.02', '"scale": NaN'))
    with pytest.raises(TableError, match="activation 'x': scale is NaN"):
        QuantTable.load(path)


def test_save_refuses_an_invalid_table(tmp_path):
    t = _table()
    t.activations["x"].zero_point = 1000
    with pytest.raises(TableError, match="zero_point 1000"):
        t.save(tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_extension_fields_survive(tmp_path):
    d = _dict()
    d["x-trainer"] = {"epochs": 3}
    d["activations"]["x"]["x-note"] = "kept"
    t = QuantTable.from_dict(d)
    assert t.to_dict()["x-trainer"] == {"epochs": 3}
    assert t.to_dict()["activations"]["x"]["x-note"] == "kept"


def test_against_the_graph(small_onnx):
    import onnx
    from quant_tables.layer_weights import layer_weights

    proto = onnx.load(small_onnx)
    lws = layer_weights(proto)
    conv = next(lw for lw in lws if lw.op_type == "Conv")
    out = conv.output
    good = QuantTable(activations={"x": ActivationQuant(0.1, 0), out: ActivationQuant(0.1, 0),
                                   "ghost": ActivationQuant(0.1, 0)},
                      weights={conv.name: WeightQuant([0.1] * conv.shape[0], 0, axis=0),
                               "ghost.weight": WeightQuant(0.1, 0)})
    check = check_against_graph(good, proto)
    assert check.unknown_activations == ["ghost"] and check.unknown_weights == ["ghost.weight"]
    assert (check.matched_activations, check.matched_weights) == (2, 1)

    wrong = QuantTable(weights={conv.name: WeightQuant([0.1] * (conv.shape[0] + 1), 0, axis=0)})
    with pytest.raises(TableError, match=rf"weight '{re.escape(conv.name)}': {conv.shape[0] + 1} "
                                         rf"scales but the graph's weight has {conv.shape[0]} channels"):
        check_against_graph(wrong, proto)
    swapped = QuantTable(activations={conv.name: ActivationQuant(0.1, 0)},
                         weights={out: WeightQuant(0.1, 0)})
    with pytest.raises(TableError) as err:
        check_against_graph(swapped, proto)
    assert "list it under weights" in str(err.value) and "computed at run time" in str(err.value)
    bad_axis = QuantTable(weights={conv.name: WeightQuant([0.1, 0.1], 0, axis=7)})
    with pytest.raises(TableError, match="axis 7 is out of range"):
        check_against_graph(bad_axis, proto)
    assert "another model" not in str(err.value)      # its names are this graph's


def test_a_table_for_another_model_says_so(small_onnx):
    """Generic exporter names (dynamo's val_12) exist in many graphs: a table made for
    another model can hit one with the wrong channel count. Most of its names are unknown
    here, so the error says the table looks made for another model, and from what."""
    import onnx
    from quant_tables.layer_weights import layer_weights
    from quant_tables.provenance import Provenance

    proto = onnx.load(small_onnx)
    conv = next(lw for lw in layer_weights(proto) if lw.op_type == "Conv")
    other = QuantTable(activations={f"val_{i}": ActivationQuant(0.1, 0) for i in range(90, 95)},
                       weights={conv.name: WeightQuant([0.1] * (conv.shape[0] * 4), 0, axis=0)},
                       provenance=Provenance(producer="calibrate", source="vit.onnx"))
    with pytest.raises(TableError) as err:
        check_against_graph(other, proto)
    assert ("only 1 of the table's 6 tensor names are in this graph: it looks made for "
            "another model (it was made from 'vit.onnx')") in str(err.value)


def test_graph_check_on_onnx_ir_model(small_onnx):
    import onnx_ir as ir
    from quant_tables.layer_weights import layer_weights
    import onnx

    lw = layer_weights(onnx.load(small_onnx))[0]
    model = ir.load(small_onnx)
    t = QuantTable(weights={lw.name: WeightQuant([0.1] * 3, 0, axis=0)})
    with pytest.raises(TableError, match="3 scales but the graph's weight has 8 channels"):
        check_against_graph(t, model)


def test_schema_fields_are_documented():
    doc = (Path(__file__).parents[2] / "quant_tables" / "SCHEMA.md").read_text()
    for name in ("quant_table", "sparsity_table"):
        schema = load_schema(name)
        fields = set()
        for d in schema["$defs"].values():
            fields |= set(d.get("properties", {}))
        missing = sorted(f for f in fields if f"`{f}`" not in doc)
        assert not missing, f"{name}: fields not in SCHEMA.md: {missing}"


def test_merged_keeps_existing_entries():
    a = QuantTable(activations={"x": ActivationQuant(0.1, 0)})
    b = QuantTable(activations={"x": ActivationQuant(0.5, 3), "y": ActivationQuant(0.2, 1)},
                   weights={"w": WeightQuant(0.1, 0)})
    m = a.merged(b)
    assert m.activations["x"].scale == 0.1 and m.activations["y"].scale == 0.2
    assert "w" in m.weights and m.provenance.details["filled_by"]["count"] == 2
    assert a.missing(["x", "y", "z"]) == ["y", "z"]
    assert np.isclose(m.activations["y"].real_range[0], 0.2 * (-128 - 1))
