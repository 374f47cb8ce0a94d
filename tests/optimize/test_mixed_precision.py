"""Mixed precision in one file: what the search's per-unit precisions are built on."""
from __future__ import annotations

import numpy as np
import pytest

from tests.optimize.test_finetune import _optimized
from tests.optimize.tiny import tiny_files


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_files(str(tmp_path_factory.mktemp("tiny-mixed")))


def test_a_unit_kept_float_in_an_int8_file(tiny, tmp_path):
    """Mixed precision in one TFLite file: the stem (a Conv whose Relu is fused into it)
    kept float by the table's override of the Conv node, everything else int8. The layout
    ops in front of the float stem stay float too (no QUANTIZE/DEQUANTIZE pair around
    them): the file still has exactly one QUANTIZE (now behind the stem) and one
    DEQUANTIZE (at the output)."""
    import copy

    from converters.api import convert
    from quant_tables import LayerOverride
    from quant_tables.producers.calibrate import calibrate

    proto, path = _optimized(tiny[0], tmp_path / "base")
    x = np.load(tiny[1])["x"]
    table = calibrate(path, {"x": x[:32]}, weights=False, limit=32)
    stem = next(n.name for n in proto.graph.node if n.op_type == "Conv")
    mixed = copy.deepcopy(table)
    mixed.overrides = [LayerOverride(node=stem, reason="test")]
    reports = {}
    for name, t in (("int8", table), ("mixed", mixed)):
        rep = convert(path, targets=("tflite",), out_dir=str(tmp_path / name), name=name,
                      precision="int8", quant_table=t, calibration_data={"x": x[:32]},
                      verify=False)
        reports[name] = rep.targets[0].details["int8"]
    full, mix = reports["int8"], reports["mixed"]
    assert full["float_ops"] == []
    assert [f["op"] for f in mix["float_ops"]] == ["CONV_2D"]
    assert mix["int8_ops"] + mix["float_moves"] == full["int8_ops"] - 1
    assert full["float_moves"] == 0
    assert mix["quantize_ops"] == full["quantize_ops"] == 1
    assert mix["dequantize_ops"] == full["dequantize_ops"] == 1
