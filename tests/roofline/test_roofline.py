"""The roofline model on hand-checkable roofs, and the device data file."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from converters.analysis import analyze
from converters.roofline.devices import Roofs, device_names, get_roofs, roofs_from_dict
from converters.roofline.model import roofline
from edgert.errors import EdgertError, InputError
from tests.roofline.conftest import make_model

ROOFS = Roofs("test", "test device", {"fp32": 100.0, "fp16": 200.0, "int8": None}, 10.0)


@pytest.fixture(scope="module")
def two_layers():
    """A 1x1 conv (64->64 at 16x16: intensity 14 > ridge 10) then an Add (below)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Add", ["c", "x"], ["y"])]
    model = make_model(nodes, [("x", [1, 64, 16, 16])], [("y", [1, 64, 16, 16])],
                       [("w", np.zeros((64, 64, 1, 1), np.float32))])
    return analyze(model)


def test_layer_bounds_by_hand(two_layers):
    r = roofline(two_layers, ROOFS, "fp32")
    conv, add = r.layers
    conv_flops, conv_bytes = 2 * 64 * 64 * 256, 4 * (64 * 64 + 2 * 64 * 256)
    assert (conv.flops, conv.bytes) == (conv_flops, conv_bytes)
    assert conv.compute_s == pytest.approx(conv_flops / 100e9)
    assert conv.memory_s == pytest.approx(conv_bytes / 10e9)
    assert conv.bound == "compute" and conv.intensity > r.ridge == 10.0
    assert add.bound == "memory" and add.memory_s == pytest.approx(3 * 4 * 16384 / 10e9)
    assert r.bound_ms == pytest.approx((conv_flops / 100e9 + 3 * 4 * 16384 / 10e9) * 1e3)
    assert conv.share + add.share == pytest.approx(1.0)
    assert r.time_share("memory") == pytest.approx(add.share)


def test_efficiency_is_bound_over_measured(two_layers):
    r = roofline(two_layers, ROOFS, "fp32", latency_ms=1.0)
    assert r.efficiency == pytest.approx(r.bound_ms / 1.0)
    assert r.attained_gflops == pytest.approx(r.flops / 1e-3 / 1e9)
    assert roofline(two_layers, ROOFS).efficiency is None
    with pytest.raises(ValueError):
        roofline(two_layers, ROOFS, latency_ms=0)


def test_precision_changes_bytes_and_roof(two_layers):
    fp32 = roofline(two_layers, ROOFS, "fp32")
    fp16 = roofline(two_layers, ROOFS, "fp16")
    assert fp16.bytes * 2 == fp32.bytes and fp16.peak_gflops == 200.0
    int8 = roofline(two_layers, ROOFS, "int8")
    assert int8.peak_gflops == 100.0            # no int8 roof: fp32 stands in, and says so
    assert any("no int8 roof" in n for n in int8.notes)


def test_devices_file_every_figure_sourced():
    names = device_names()
    assert {"raspberry-pi-4", "raspberry-pi-5", "jetson-nano", "jetson-orin-nano",
            "jetson-orin-nx", "jetson-agx-orin", "snapdragon-8-gen-2-cpu"} <= set(names)
    for name in names:
        r = get_roofs(name)
        assert r.bandwidth_gbps > 0 and r.peak_gflops["fp32"] > 0
        assert set(r.sources) == {p for p, v in r.peak_gflops.items() if v} | {"bandwidth"}
        assert all("[" in s for s in r.sources.values()), f"{name}: a figure without a basis"
    assert get_roofs("raspberry-pi-5").ridge("fp32") == pytest.approx(153.6 / 17.1)


def test_roofs_from_a_measured_json(tmp_path):
    entry = {"name": "board", "title": "a board", "measured": True,
             "peak_gflops": {"fp32": {"value": 12.5, "source": "measured"}, "int8": None},
             "bandwidth_gbps": {"value": 3.2, "source": "measured"}}
    path = tmp_path / "board.json"
    path.write_text(json.dumps(entry))
    r = get_roofs(str(path))
    assert (r.name, r.peak_gflops["fp32"], r.bandwidth_gbps, r.measured) == \
        ("board", 12.5, 3.2, True)


def test_bad_devices_are_named():
    with pytest.raises(InputError, match="unknown device 'pi-9'; known: host, raspberry-pi-4"):
        get_roofs("pi-9")
    with pytest.raises(InputError, match="not a roofs entry"):
        roofs_from_dict("x", {"peak_gflops": {}})
    with pytest.raises(EdgertError, match="no sourced fp16 or fp32 peak"):
        Roofs("x", "x", {"fp32": None}, 1.0).peak("fp16")
