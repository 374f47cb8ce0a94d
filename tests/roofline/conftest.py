"""Fixtures of the roofline tests: tiny ONNX graphs built with onnx.helper, zoo
models exported once per session (the root conftest keeps the edgert cache private)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest


def make_model(nodes, inputs, outputs, initializers=(), opset=21):
    """An ONNX model from (name, shape[, elem_type]) inputs/outputs and numpy initializers."""
    from onnx import TensorProto, helper, numpy_helper

    def vi(spec):
        name, shape = spec[0], spec[1]
        elem = spec[2] if len(spec) > 2 else TensorProto.FLOAT
        return helper.make_tensor_value_info(name, elem, shape)

    graph = helper.make_graph(nodes, "g", [vi(i) for i in inputs], [vi(o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(a), n)
                               for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def export_zoo(name, path, resolution=None):
    import torch

    from converters import zoo

    m = zoo.build(name, resolution=resolution, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m.module, m.example_inputs, str(path), input_names=m.input_names,
                          output_names=m.output_names, dynamic_axes=m.dynamic_axes,
                          dynamo=False)
    return str(path)


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """``zoo_onnx("resnet18", 224)``: the zoo model exported to ONNX, once per session."""
    cache = {}
    root = tmp_path_factory.mktemp("roofline-zoo")

    def get(name, resolution=None):
        key = (name, resolution)
        if key not in cache:
            cache[key] = export_zoo(name, root / f"{name}_{resolution}.onnx", resolution)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def small_cnn(tmp_path_factory):
    """A seeded conv-bn-relu / depthwise / pool / linear model at 32x32, as ONNX."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("roofline-small") / "small_cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), input_names=["input"],
                          output_names=["logits"], dynamo=False)
    return str(path)
