"""The table code reads ONNX protos, where the default domain may be spelled "" or
"ai.onnx": its per-op tables (``edgert.op_registry``) treat both as one domain, and an op
of the same name in another domain as another op."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from quant_tables import ActivationQuant, QuantTable
from quant_tables.layer_weights import layer_weights
from quant_tables.propagate import fill_passthrough


def _model(domain: str):
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], domain=domain),
             helper.make_node("Conv", ["p", "w"], ["y"], domain=domain)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], [w])
    opsets = [helper.make_opsetid("ai.onnx" if domain == "ai.onnx" else "", 13)]
    if domain not in ("", "ai.onnx"):
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("domain,known", [("", True), ("ai.onnx", True),
                                          ("com.example", False)])
def test_default_domain_spellings_are_one_domain(domain, known):
    table = QuantTable(activations={"x": ActivationQuant(scale=0.1, zero_point=-3)})
    filled = fill_passthrough(table, _model(domain))
    assert filled == (["p"] if known else [])
    weights = layer_weights(_model(domain))
    assert [(lw.name, lw.axis) for lw in weights] == ([("w", 0)] if known else [])
