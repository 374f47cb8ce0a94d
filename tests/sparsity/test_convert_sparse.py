"""Sparse and channel-pruned models through convert(): both formats, checked against the masked source.

One pruned conv net goes to MNN and TFLite once (module fixture); the tests read
what each backend wrote: MNN's own sparse marks in the .mnn file against our copy
of its rule, TFLite's sparse formats and DENSIFY ops, sizes against the dense
conversion of the same model, and the verification (fp32 gate, cosine >= 0.99999).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from converters.api import convert
from converters.mnn.model_reader import read_convolutions
from converters.mnn.sparse import mnn_sparsity, threshold
from quant_tables.producers.sparsity_torch import prune_torch
from tests.sparsity.conftest import convnet, mlp


def _prune_convnet():
    model, x = convnet()
    tables = []
    for pattern, target, include, kinds in [("1x4", 0.8, r"^[28]\.", ("conv1x1",)),
                                            ("1x4", 0.2, r"^6\.", ("conv1x1",)),
                                            ("unstructured", 0.8, r"^4\.", ("depthwise",)),
                                            ("ic4", 0.75, r"^11\.", ("fc",))]:
        t, _ = prune_torch(model, pattern, target, kinds=kinds, include=include)
        tables.append(t)
    table = tables[0]
    for t in tables[1:]:
        table.weights.update(t.weights)
    return model, x, table


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    model, x, table = _prune_convnet()
    out = tmp_path_factory.mktemp("sparse")
    sparse = convert(model, targets="mnn,tflite", example_inputs=x, out_dir=out / "sparse",
                     sparsity_table=table, raise_on_error=False)
    dense = convert(model, targets="mnn,tflite", example_inputs=x, out_dir=out / "dense",
                    verify=False)
    return table, sparse, dense


def test_both_formats_verify_against_the_masked_source(converted):
    _, sparse, _ = converted
    for t in sparse.targets:
        assert t.error is None, t.error
        assert t.verification.passed, t.verification.failures
        assert min(o.cosine for o in t.verification.outputs) >= 0.99999


def test_mnn_marks_exactly_what_its_rule_predicts(converted):
    table, sparse, dense = converted
    mnn = sparse.target("mnn")
    info = mnn.details["sparsity"]
    assert (info["algo"], info["block_oc"], info["threshold"]) == ("SIMD_OC", 4, 0.3)
    params = (sparse.target("mnn").path[:-4] + ".compression.json")
    import json
    prune = json.load(open(params))["algo"][0]["pruneParams"]
    assert prune["type"] == "SIMD_OC" and prune["simdOcPrunerParams"]["ocBlocks"][0] == 4
    rows = {r["weight"]: r for r in info["layers"]}
    assert set(rows) == set(table.weights)
    for r in rows.values():               # the file (MNN's decision) vs our copy of its rule
        assert r["marked_sparse"] == (r["mnn_sparsity"] > threshold(4)), r
    assert rows["2.weight"]["runs"] == rows["8.weight"]["runs"] == "sparse"
    assert rows["6.weight"]["runs"] == "dense" and "<= 30%" in rows["6.weight"]["why"]
    assert rows["4.weight"]["runs"] == "dense (stored sparse)"          # depthwise
    convs = {c.name: c for c in read_convolutions(mnn.path)}
    w = dict(_weights(sparse))
    c2 = convs[rows["2.weight"]["mnn_op"]]
    expect = round((1 - mnn_sparsity(w["2.weight"], 0, 4)) * w["2.weight"].size)
    assert c2.storage == "sparse" and c2.nnz == expect and c2.block_oc == 4
    assert mnn.size_bytes < 0.75 * dense.target("mnn").size_bytes


def _weights(report):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(report.optimized_path)
    return [(i.name, numpy_helper.to_array(i)) for i in m.graph.initializer]


def test_tflite_formats_per_layer(converted):
    _, sparse, dense = converted
    tfl = sparse.target("tflite")
    rows = {r["weight"]: r for r in tfl.details["sparsity"]["layers"]}
    assert rows["11.weight"]["format"] == "1x4 blocks" and rows["11.weight"]["runs"] == "sparse"
    for name in ("2.weight", "8.weight", "4.weight"):
        assert rows[name]["format"] == "DENSIFY (CSR)", rows[name]
    assert rows["6.weight"]["format"] == "dense" and "20%" in rows["6.weight"]["why"]
    assert tfl.op_counts.get("DENSIFY") == 3
    assert tfl.size_bytes < dense.target("tflite").size_bytes - 20_000


@pytest.mark.parametrize("pattern, sparsity, fmt", [("ic4", 0.8, "1x4 blocks"),
                                                   ("unstructured", 0.95, "1x4 blocks"),
                                                   ("unstructured", 0.8, "dense")])
def test_tflite_float_fc(tmp_path, pattern, sparsity, fmt):
    model, x = mlp()
    table, _ = prune_torch(model, pattern, sparsity, kinds=("fc",), exclude=r"^4\.")
    rep = convert(model, targets="tflite", example_inputs=x, out_dir=tmp_path,
                  sparsity_table=table, thresholds={"min_cosine": 0.99999})
    rows = rep.target("tflite").details["sparsity"]["layers"]
    assert [r["format"] for r in rows] == [fmt, fmt]
    dense_bytes = 4 * sum(p.numel() for p in model.parameters())
    if fmt == "dense":      # CSR would be slower than the dense kernel at 80% (measured)
        assert "dense kernel is faster" in rows[0]["why"]
        assert rep.target("tflite").size_bytes > dense_bytes
    else:
        assert rep.target("tflite").size_bytes < 0.6 * dense_bytes


def test_tflite_csr_when_blocks_do_not_fit(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(66, 128), nn.ReLU(), nn.Linear(128, 4)).eval()
    table, _ = prune_torch(model, "unstructured", 0.95, kinds=("fc",), include=r"^0\.")
    rep = convert(model, targets="tflite", example_inputs=(torch.randn(1, 66),),
                  out_dir=tmp_path, sparsity_table=table)
    (row,) = rep.target("tflite").details["sparsity"]["layers"]
    assert row["format"] == "CSR" and row["runs"] == "sparse"      # 66 inputs: no 1x4 blocks
    assert rep.target("tflite").verification.outputs[0].cosine >= 0.99999


def test_tflite_int8_fc_blocks_match_dense_int8(tmp_path):
    import edgert

    model, x = mlp()
    table, _ = prune_torch(model, "ic16", 0.8, kinds=("fc",), exclude=r"^4\.")
    cal = np.random.default_rng(1).normal(size=(32, 64)).astype(np.float32)
    out = {}
    for key, tab in (("sparse", table), ("dense", None)):
        rep = convert(model, targets="tflite", example_inputs=x, out_dir=tmp_path / key,
                      precision="int8", sparsity_table=tab, calibration_data=cal)
        out[key] = rep.target("tflite")
    rows = out["sparse"].details["sparsity"]["layers"]
    assert [r["format"] for r in rows] == ["1x16 blocks", "1x16 blocks"]
    feed = x[0].numpy()
    ys = [edgert.load(out[k].path, check="structure").run(feed) for k in ("sparse", "dense")]
    got, want = [list(y.values())[0] for y in ys]
    # two int8 implementations (sparse 1x16 blocks, dense) of one table: within the
    # int8 bound in output steps (converters.verify.int8_lsb_bound), on any CPU
    from converters.verify import int8_lsb_bound
    from quant_tables import QuantTable
    from tests.quant_tables.int8_bounds import depths

    dense = out["dense"]
    name = os.path.splitext(os.path.basename(dense.path))[0].split(".")[0]
    table = QuantTable.load(os.path.join(os.path.dirname(dense.path), f"{name}.int8.quant.json"))
    opt = os.path.join(os.path.dirname(dense.path), f"{name}.optimized.onnx")
    out_name = list(depths(opt))[0]
    step = table.activations[out_name].scale
    assert np.max(np.abs(got - want)) <= int8_lsb_bound(depths(opt)[out_name]) * step
    assert out["sparse"].size_bytes < out["dense"].size_bytes


def test_tflite_hybrid_and_fp16_stay_dense_with_a_reason(tmp_path):
    import edgert

    model, x = mlp()
    table, _ = prune_torch(model, "ic16", 0.8, kinds=("fc",), exclude=r"^4\.")
    hybrid = convert(model, targets="tflite", example_inputs=x, out_dir=tmp_path / "h",
                     precision="int8_weights", sparsity_table=table).target("tflite")
    assert all(r["format"] == "dense" and "XNNPACK" in r["why"]
               for r in hybrid.details["sparsity"]["layers"])
    half = convert(model, targets="tflite", example_inputs=x, out_dir=tmp_path / "f",
                   precision="fp16", sparsity_table=table).target("tflite")
    assert all("DEQUANTIZE" in r["why"] for r in half.details["sparsity"]["layers"])
    # opt-in: 1x16 hybrid blocks, right on the built-in kernels (XNNPACK off)
    opt = convert(model, targets="tflite", example_inputs=x, out_dir=tmp_path / "o",
                  precision="int8_weights", sparsity_table=table, verify=False,
                  backend_options={"tflite_sparse_hybrid": True}).target("tflite")
    assert [r["format"] for r in opt.details["sparsity"]["layers"]] == ["1x16 blocks"] * 2
    feed = x[0].numpy()
    got = list(edgert.load(opt.path, check="structure", xnnpack=False).run(feed).values())[0]
    want = list(edgert.load(hybrid.path, check="structure", xnnpack=False).run(feed).values())[0]
    cos = float(np.dot(got.ravel(), want.ravel()) / np.linalg.norm(got) / np.linalg.norm(want))
    assert cos > 0.999


@pytest.mark.parametrize("name, targets", [("mobilenet_v2", "mnn,tflite"),
                                           ("resnet18", "mnn"), ("unet", "tflite")])
def test_channel_table_through_convert(zoo_sources, tmp_path, name, targets):
    from converters.pruning import plan_channels

    zm, src = zoo_sources[name]
    table = plan_channels(src.model.clone(), keep=0.7)
    rep = convert(src, targets=targets, out_dir=tmp_path, sparsity_table=table)
    assert rep.ok
    p = rep.pruning
    assert p.flops_after < 0.7 * p.flops_before and p.params_after < 0.7 * p.params_before
    assert any("masked" in n for n in rep.source["notes"])
    for t in rep.targets:
        assert t.size_bytes < 4 * p.params_before * 0.75
        out = t.verification.outputs[0]
        assert out.cosine >= 0.99999 and out.top1 in (None, 1.0)


def test_entries_follow_linear_weights_the_exporter_renamed(tmp_path):
    """A Linear on [batch, tokens, features] exports as MatMul with a transposed constant
    (val_N): the table entry follows it by value, and TFLite runs it sparse."""
    import torch
    from torch import nn

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 96)
            self.out = nn.Linear(96, 8)

        def forward(self, x):
            return self.out(torch.relu(self.fc(x)))

    torch.manual_seed(0)
    model = Tokens().eval()
    table, _ = prune_torch(model, "ic4", 0.9, kinds=("fc",), include=r"^fc\.")
    rep = convert(model, targets="tflite", example_inputs=(torch.randn(2, 5, 64),),
                  out_dir=tmp_path, sparsity_table=table)
    notes = " ".join(rep.source["notes"])
    assert "fc.weight -> " in notes and "(transposed)" in notes
    (row,) = rep.target("tflite").details["sparsity"]["layers"]
    assert row["weight"] != "fc.weight" and row["runs"] == "sparse", row
    assert rep.target("tflite").verification.outputs[0].cosine >= 0.99999


def test_a_model_pruned_with_torch_ao_pruning_keeps_its_table(tmp_path):
    """torch.ao.pruning's sparsifiers hold their masks as parametrizations
    (``parametrizations.weight.original``): the export named the weight otherwise, so
    the table (``2.weight``...) matched nothing and both files came out dense with only
    a note. The parametrizations are baked into the exported copy like prune's masks."""
    import torch
    from torch.ao.pruning import WeightNormSparsifier

    from quant_tables.producers.sparsity_torch import table_from_torch

    model, x = mlp()
    sparsifier = WeightNormSparsifier(sparsity_level=0.8, sparse_block_shape=(1, 4),
                                      zeros_per_block=4)
    sparsifier.prepare(model, [{"tensor_fqn": "2.weight"}])
    sparsifier.step()
    table = table_from_torch(model)
    assert set(table.weights) == {"2.weight"}
    rep = convert(model, targets="mnn,tflite", example_inputs=x, out_dir=tmp_path,
                  sparsity_table=table, thresholds={"min_cosine": 0.99999})
    for t in rep.targets:
        (row,) = t.details["sparsity"]["layers"]
        assert row["weight"] == "2.weight" and row["runs"] == "sparse", (t.target, row)
        assert t.verification.passed
    # the user's module keeps its parametrizations (the export used a copy)
    assert hasattr(model[2], "parametrizations")
    assert torch.equal(model[2].weight == 0, model[2].parametrizations.weight[0].mask == 0)


def test_a_sparsity_table_none_of_whose_weights_is_in_the_graph_is_refused(tmp_path):
    from quant_tables.errors import TableError
    from quant_tables.sparsity_table import SparsityTable, WeightSparsity

    model, x = mlp()
    table = SparsityTable(weights={"backbone.3.weight": WeightSparsity(
        pattern="unstructured", target=0.5)})
    with pytest.raises(TableError, match=r"none of its 1 weight\(s\) is in the graph "
                                         r"\(backbone.3.weight\)"):
        convert(model, targets="tflite", example_inputs=x, out_dir=tmp_path / "o",
                sparsity_table=table)
    assert not (tmp_path / "o" / "sequential.tflite").exists()
