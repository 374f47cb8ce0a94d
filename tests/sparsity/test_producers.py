"""Tables from pruned PyTorch models and ONNX files: masks, zeros, detected patterns, names."""
from __future__ import annotations

import numpy as np
import pytest

from quant_tables import SparsityTable
from quant_tables.producers.sparsity_onnx import prune_onnx, table_from_onnx, weight_arrays
from quant_tables.producers.sparsity_torch import (bake_masks, prune_torch, rekey_by_value,
                                                   table_from_torch)
from quant_tables.sparsity_table import check_weights, nm_violations
from tests.sparsity.conftest import convnet, mlp


def test_torch_prune_masks_become_a_table():
    import torch
    import torch.nn.utils.prune as prune

    model, _ = mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.6)
    with torch.no_grad():                                 # plain zeros, no mask: one run of
        w = model[2].weight.view(256, 16, 16)             # 16 inputs per row, a different
        for r in range(256):                              # run in neighbouring rows
            w[r, r % 16] = 0
    t = table_from_torch(model)
    assert set(t.weights) == {"0.weight", "2.weight"}
    a, b = t.weights["0.weight"], t.weights["2.weight"]
    assert a.mask_source == "torch_prune" and a.pattern == "unstructured"
    assert a.measured == pytest.approx(1 - float(model[0].weight_mask.mean()))
    assert b.mask_source == "zeros" and b.measured == pytest.approx(1 / 16)
    assert b.pattern == "block" and tuple(b.block) == (1, 16)   # zeros run along the inputs
    SparsityTable.from_dict(t.to_dict())                        # valid against the schema


def test_detected_patterns():
    import torch

    model, _ = convnet()
    with torch.no_grad():
        w = model[2].weight                                      # 64x32x1x1
        w[:8] = 0                                                # whole output channels
        w2 = model[6].weight                                     # 128x64x1x1
        w2.view(32, 4, 64)[:, :, ::2] = 0                        # 4x1 blocks along outputs
        w3 = model[8].weight                                     # 64x128x1x1
        g3 = w3.view(64, 32, 4)                                  # 2:4 along inputs, the
        g3[0::2, :, :2] = 0                                      # pair moving row to row
        g3[1::2, :, 2:] = 0
    t = table_from_torch(model)
    assert t.weights["2.weight"].pattern == "channel"
    assert t.weights["2.weight"].pruned == list(range(8))
    assert t.weights["6.weight"].pattern == "block" and tuple(t.weights["6.weight"].block) == (4, 1)
    assert t.weights["8.weight"].pattern == "n:m" and t.weights["8.weight"].n == 2
    weights = {f"{k}.weight": model[k].weight.detach().numpy() for k in (2, 6, 8)}
    assert check_weights(t, weights)["6.weight"] == pytest.approx(0.5)


def test_pruned_torch_model_keys_match_the_export_and_bake_keeps_numbers():
    import torch

    from converters.frontends import load_source

    model, x = convnet()
    table, result = prune_torch(model, "1x4", 0.75, kinds=("conv1x1",))
    assert hasattr(model[2], "weight_mask") and hasattr(model[2], "weight_orig")
    baked = bake_masks(model)
    assert not hasattr(baked[2], "weight_mask")
    with torch.no_grad():
        assert torch.equal(baked(*x), model(*x))
    src = load_source(baked, x)
    inits = {n: v.const_value.numpy() for n, v in src.model.graph.initializers.items()}
    assert set(table.weights) <= set(inits)          # the dynamo names are the parameter names
    found = check_weights(table, inits)
    assert found == pytest.approx({r.name: r.reached for r in result.layers})
    assert all(0.74 <= v <= 0.76 for v in found.values())


def test_rekey_by_value_finds_renamed_initializers():
    import onnx_ir as ir
    import torch.nn.utils.prune as prune

    from converters.frontends import load_source

    model, x = convnet()
    prune.l1_unstructured(model[2], "weight", amount=0.7)
    table = table_from_torch(model)
    proto = ir.serde.serialize_model(load_source(bake_masks(model), x).model)
    for init in proto.graph.initializer:              # another exporter's names
        old, init.name = init.name, "onnx::Conv_" + init.name.replace(".", "_")
        for node in proto.graph.node:
            node.input[:] = [init.name if i == old else i for i in node.input]
    rekeyed, missing = rekey_by_value(table, model, proto)
    assert not missing and list(rekeyed.weights) == ["onnx::Conv_2_weight"]
    assert rekeyed.weights["onnx::Conv_2_weight"].source == "2.weight"
    assert rekeyed.weights["onnx::Conv_2_weight"].measured == table.weights["2.weight"].measured


def test_onnx_prune_writes_zeros_and_a_matching_table():
    from converters.frontends import load_source

    model, x = mlp()
    src = load_source(model, x)
    proto, table, result = prune_onnx(src.model, "2:4", 0.5, kinds=("fc",), exclude=r"^4\.")
    arrays = weight_arrays(proto)
    assert set(table.weights) == {"0.weight", "2.weight"}
    for name in table.weights:
        assert nm_violations(arrays[name], 2, 4, 1) == 0
    assert not np.any(arrays["4.weight"] == 0)           # excluded layer untouched
    again = table_from_onnx(proto)
    assert again.weights["0.weight"].pattern == "n:m"
    assert again.weights["0.weight"].measured == pytest.approx(0.5)
