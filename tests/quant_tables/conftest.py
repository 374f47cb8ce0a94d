"""Fixtures of the quant_tables tests: a small CNN exported to ONNX, its QDQ form from
onnxruntime's quantize_static, seeded calibration data. Built once per session."""
from __future__ import annotations

import warnings

import numpy as np
import pytest


def small_cnn(seed: int = 0):
    """conv-bn-relu, maxpool, conv-relu, flatten, linear: every op family a table touches."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)).eval()


def export(model, path: str, example) -> str:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    return path


@pytest.fixture(scope="session")
def cal_data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(48, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory) -> str:
    import torch

    path = str(tmp_path_factory.mktemp("models") / "small.onnx")
    return export(small_cnn(), path, torch.zeros(1, 1, 8, 8))


@pytest.fixture(scope="session")
def qdq_onnx(small_onnx, cal_data, tmp_path_factory) -> str:
    """The small CNN quantized by onnxruntime (QDQ, per-channel int8 weights, int8 activations)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": cal_data[i:i + 1]} for i in range(16)])

        def get_next(self):
            return next(self._it, None)

    path = str(tmp_path_factory.mktemp("models") / "small_qdq.onnx")
    import logging
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(small_onnx, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return path


def ort_run(model, x: np.ndarray, optimize: bool = False) -> np.ndarray:
    """ONNX Runtime output 0; optimizations off so QDQ pairs run as fake quantization."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]
