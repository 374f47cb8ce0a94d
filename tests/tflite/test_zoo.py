"""Acceptance: the whole zoo converts to TFLite (fp32 and fp16) through the converter
pipeline and agrees with PyTorch on the real LiteRT interpreter, XNNPACK on:
fp32 cosine >= 0.99999, fp16 cosine >= 0.999. Each model is exported once per
session; both precisions reuse that export."""
from __future__ import annotations

import pytest

from converters import zoo
from tests.tflite.conftest import cosine, litert_run

MIN_COSINE = {"fp32": 0.99999, "fp16": 0.999}
# TRANSPOSE ops a model may keep with source (NCHW) I/O: the input boundary for CNNs, the
# output boundary for the U-Net, one per channel shuffle, two per attention layer.
MAX_TRANSPOSES = {"shufflenet_v2": 17, "transformer_encoder": 4, "unet": 2, "lstm": 0, "gru": 0}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_converts_and_matches_pytorch(name, precision, zoo_source, tmp_path):
    from converters import convert
    src = zoo_source(name)
    report = convert(src, targets=["tflite"], out_dir=tmp_path, precision=precision,
                     load_check="structure", raise_on_error=False)
    t = report.target("tflite")
    assert t.error is None, t.error
    assert t.path.endswith(".tflite")
    assert [o.name for o in t.verification.outputs] == src.output_names
    for out in t.verification.outputs:
        assert out.cosine >= MIN_COSINE[precision], (name, out.name, out.cosine)
    assert t.details["transposes"] <= MAX_TRANSPOSES.get(name, 1)
    assert t.op_counts.get("TRANSPOSE", 0) == t.details["transposes"]
    if precision == "fp16":
        assert t.op_counts.get("DEQUANTIZE", 0) > 0


@pytest.mark.slow
def test_nhwc_io_drops_boundary_transposes(zoo_source, tmp_path):
    """io_layout="nhwc": a CNN keeps no TRANSPOSE and takes NHWC input."""
    import numpy as np
    import torch
    from converters.backends import BackendOptions, get_backend
    from converters.passes import optimize

    src = zoo_source("resnet18")
    model = src.model.clone()
    optimize(model)
    res = get_backend("tflite").convert(model, tmp_path / "r.tflite",
                                        BackendOptions(io_layout="nhwc"))
    assert res.op_counts.get("TRANSPOSE", 0) == 0
    assert res.details["io_layouts"]["inputs"] == {"input": "NHWC"}
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = zoo.build("resnet18", resolution=64, seed=0).module(torch.from_numpy(x)).numpy()
    out = litert_run(res.path, {"input": x.transpose(0, 2, 3, 1).copy()})["logits"]
    assert cosine(ref, out) >= MIN_COSINE["fp32"]


@pytest.mark.slow
def test_convert_verifies_nhwc_io_like_for_like(zoo_source, tmp_path):
    """convert(io_layout="nhwc") feeds the TFLite model NHWC and reads its NHWC output
    back into NCHW before comparing, so verification measures the model, not the layout
    (the U-Net has a 4-D output, so both directions are exercised)."""
    from converters import convert

    src = zoo_source("unet")
    report = convert(src, targets=["tflite"], out_dir=tmp_path, io_layout="nhwc",
                     load_check="structure", raise_on_error=False)
    t = report.target("tflite")
    assert t.error is None, t.error
    assert t.details["io_layouts"]["inputs"] == {src.input_names[0]: "NHWC"}
    assert set(t.details["io_layouts"]["outputs"].values()) == {"NHWC"}
    assert t.details["boundary_transposes"] == 0
    assert t.verification.outputs[0].cosine >= MIN_COSINE["fp32"]
