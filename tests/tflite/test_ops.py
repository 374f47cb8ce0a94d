"""Op-level table tests: every row of ``op_table`` converted to TFLite and run by the real
LiteRT interpreter (XNNPACK on) must match ONNX Runtime on the same single-node model,
within the fp32 tolerance of ``converters.verify.assert_close``."""
from __future__ import annotations

import numpy as np
import pytest

from converters.verify import assert_close
from tests.tflite.conftest import build_model, convert_ir, litert_run, reference_run
from tests.tflite.op_table import CASES, FAMILIES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_matches_onnxruntime(case, tmp_path):
    model, feeds = build_model(case)
    reference = reference_run(case, model, feeds)
    result = convert_ir(model, tmp_path / f"{case.id}.tflite")
    outputs = litert_run(result.path, feeds)
    assert list(outputs) == [o.name for o in model.graph.output]
    for ref, got in zip(reference, outputs.values()):
        if ref.dtype != got.dtype and ref.dtype.kind == got.dtype.kind == "i":
            got = got.astype(ref.dtype)
        if ref.dtype == np.bool_:
            np.testing.assert_array_equal(got, ref)
            continue
        assert_close(ref, got, "fp32")


def test_every_lowering_family_has_rows():
    """Each op-family module of the registry is cross-checked by at least two table rows."""
    from converters.tflite import registry
    # control flow (If, Loop) holds subgraphs, not one node: tests/converters/test_control_flow.py
    families = {m.rsplit(".", 1)[-1] for m in registry.OP_MODULES} - {"control_flow"}
    assert families == set(FAMILIES)
    assert all(len(rows) >= 2 for rows in FAMILIES.values())


def test_table_covers_most_registered_ops():
    from converters.tflite import registry
    tested = {c.op for c in CASES}
    registered = {e.onnx_op for e in registry.all_lowerings() if not e.domain}
    # If and Loop: tests/converters/test_control_flow.py (their bodies are subgraphs)
    untested = registered - tested - {"Constant", "Dropout", "If", "Loop"}
    assert not untested, sorted(untested)
