"""The sparsity-table format: round trip, validation, and measuring real arrays."""
from __future__ import annotations

import json

import numpy as np
import pytest

from quant_tables.errors import TableError
from quant_tables import SparsityTable, WeightSparsity, load_table
from quant_tables.sparsity_table import check_graph_names, check_weights, nm_violations, pattern_sparsity


def _table() -> SparsityTable:
    return SparsityTable(weights={
        "a": WeightSparsity("block", "magnitude", measured=0.5, block=(4, 1)),
        "b": WeightSparsity("n:m", "target", target=0.5, n=2, m=4),
        "c": WeightSparsity("channel", "channel_prune", measured=0.25, pruned=[1]),
        "d": WeightSparsity("unstructured", "torch_prune", measured=0.75)})


def test_round_trip(tmp_path):
    path = tmp_path / "s.json"
    _table().save(path)
    back = load_table(path)
    assert isinstance(back, SparsityTable)
    assert back.weights["a"].block == (4, 1) and back.weights["a"].axes == (0, 1)
    assert back.weights["b"].pattern_axis == 1 and back.weights["c"].pattern_axis == 0
    assert back.weights["b"].sparsity == 0.5 and back.weights["d"].sparsity == 0.75
    assert back.to_dict()["weights"] == _table().to_dict()["weights"]


@pytest.mark.parametrize("edit, message", [
    (lambda e: e.update(n=4, m=4), r"weight 'b': n:m needs n < m, got 4:4"),
    (lambda e: e.pop("target"), r"weights\['b'\]"),
    (lambda e: e.update(pattern="diagonal"), r"weights\['b'\]\['pattern'\]"),
    (lambda e: e.update(target=1.5), r"weights\['b'\]\['target'\]"),
    (lambda e: e.update(mask_source="guess"), r"weights\['b'\]\['mask_source'\]"),
    (lambda e: e.update(block=[1, 4]), r"weight 'b': 'block' given for pattern 'n:m'"),
])
def test_invalid_entries(edit, message):
    d = json.loads(_table().to_json())
    edit(d["weights"]["b"])
    with pytest.raises(TableError, match=message):
        SparsityTable.from_dict(d)


def test_block_pattern_requires_block():
    d = json.loads(_table().to_json())
    del d["weights"]["a"]["block"]
    with pytest.raises(TableError, match=r"weights\['a'\].*'block' is a required property"):
        SparsityTable.from_dict(d)


def test_pattern_sparsity_counts_the_pattern_way():
    w = np.ones((8, 4), np.float32)
    w[0:4, 0] = 0           # one whole 4x1 block along output channels
    w[5, 1] = 0             # a stray zero: not a whole block
    e = WeightSparsity("block", "zeros", measured=0.0, block=(4, 1))
    assert pattern_sparsity(w, e) == pytest.approx(1 / 8)   # 8 blocks, 1 all-zero
    assert pattern_sparsity(w, WeightSparsity("unstructured", "zeros", measured=0)) == pytest.approx(5 / 32)
    ch = np.ones((4, 3, 3, 3), np.float32)
    ch[2] = 0
    assert pattern_sparsity(ch, WeightSparsity("channel", "zeros", measured=0)) == 0.25
    nm = np.array([[1, 0, 2, 0, 0, 3, 0, 4]], np.float32)
    assert nm_violations(nm, 2, 4, axis=1) == 0
    nm[0, 1] = 5
    assert nm_violations(nm, 2, 4, axis=1) == 1


def test_check_weights_against_arrays():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(8, 8)).astype(np.float32)
    a[0:4, :4] = 0                                  # 4 of 16 4x1 blocks are zero: 0.25, not 0.5
    b = rng.normal(size=(4, 8)).astype(np.float32)  # target only: not checked
    c = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    c[1] = 0
    d = rng.normal(size=(10, 10)).astype(np.float32)
    d[d < 0.6] = 0                                  # roughly 0.73 zero
    with pytest.raises(TableError) as err:
        check_weights(_table(), {"a": a, "b": b, "c": c, "d": d}, tol=0.05)
    msg = str(err.value)
    assert "weight 'a'" in msg and "block sparsity 0.5000, the weight has 0.2500" in msg
    assert "weight 'c'" not in msg and "weight 'd'" not in msg
    found = check_weights(_table(), {"c": c, "d": d}, tol=0.05)
    assert found["c"] == 0.25 and abs(found["d"] - 0.75) < 0.05
    c[1, 0, 0, 0] = 1.0
    t = SparsityTable(weights={"c": WeightSparsity("channel", "zeros", measured=0.0, pruned=[1])})
    with pytest.raises(TableError, match=r"channels listed as pruned are not zero: \[1\]"):
        check_weights(t, {"c": c})


def test_check_graph_names(small_onnx):
    import onnx
    from quant_tables.layer_weights import layer_weights

    lw = [w for w in layer_weights(onnx.load(small_onnx)) if w.op_type == "Gemm"][0]
    t = SparsityTable(weights={lw.name: WeightSparsity("n:m", "target", target=0.5, n=2, m=4),
                               "nowhere": WeightSparsity("unstructured", "target", target=0.1)})
    assert check_graph_names(t, small_onnx) == ["nowhere"]
    t.weights[lw.name] = WeightSparsity("n:m", "target", target=0.5, n=2, m=3)
    with pytest.raises(TableError, match=r"not a multiple of m=3") as err:
        check_graph_names(t, small_onnx)
    assert "another model" not in str(err.value)          # half its names are this graph's
    t.weights.update({f"val_{i}": WeightSparsity("unstructured", "target", target=0.1)
                      for i in range(3)})
    with pytest.raises(TableError, match=r"only 1 of the table's 5 weight names are in this "
                                         r"graph: it looks made for another model"):
        check_graph_names(t, small_onnx)
