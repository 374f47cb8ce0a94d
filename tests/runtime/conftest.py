"""Model files of every format, built once per test session."""
from __future__ import annotations

import numpy as np
import pytest

from tests.runtime import model_builders as mb


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("runtime-models")
    rng = np.random.default_rng(42)
    paths = {}
    paths["onnx"] = str(d / "conv.onnx")
    mb.conv_classifier_onnx(paths["onnx"])
    paths["mnn"] = str(d / "conv.mnn")
    mb.onnx_to_mnn(paths["onnx"], paths["mnn"])
    w = rng.standard_normal((5, 12)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    paths["tflite"] = str(d / "fc.tflite")
    mb.fc_relu_tflite(paths["tflite"], w, b)
    paths["fc_weights"] = (w, b)
    w_q = rng.integers(-127, 128, size=(4, 6)).astype(np.int8)
    b_q = rng.integers(-200, 200, size=4).astype(np.int32)
    paths["tflite_int8"] = str(d / "fc_int8.tflite")
    paths["int8_params"] = dict(w_q=w_q, b_q=b_q, in_q=(0.05, 3), w_scale=0.01, out_q=(0.2, -5))
    mb.fc_int8_tflite(paths["tflite_int8"], **paths["int8_params"])
    return paths
