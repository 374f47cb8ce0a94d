"""``edgert prune`` and ``edgert convert --sparsity-table``, through the real CLI entry."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgert.cli import main
from quant_tables import SparsityTable
from quant_tables.producers.sparsity_onnx import weight_arrays
from quant_tables.sparsity_table import nm_violations
from tests.sparsity.conftest import convnet


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    from converters.frontends import load_source
    from converters.onnx_io import save_onnx

    model, x = convnet()
    path = tmp_path_factory.mktemp("cli") / "net.onnx"
    save_onnx(load_source(model, x).model, path)
    return str(path)


def test_prune_two_four_writes_table_and_pruned_onnx(small_onnx, tmp_path, capsys):
    assert main(["prune", small_onnx, "--pattern", "2:4", "--kinds", "conv1x1,fc",
                 "--out", str(tmp_path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    table = SparsityTable.load(rep["table"])
    arrays = weight_arrays(rep["pruned_onnx"])
    assert set(table.weights) == {"2.weight", "6.weight", "8.weight", "11.weight"}
    for name in table.weights:
        assert nm_violations(arrays[name], 2, 4, 1) == 0
        assert float(np.mean(arrays[name] == 0)) == pytest.approx(0.5)
    assert [l["reached"] for l in rep["layers"]["layers"]] == [0.5] * 4


def test_prune_channels_and_convert(small_onnx, tmp_path, capsys):
    assert main(["prune", small_onnx, "--pattern", "channel", "--sparsity", "0.5",
                 "--out", str(tmp_path), "--to", "mnn"]) == 0
    text = capsys.readouterr().out
    assert "MFLOPs ->" in text and "verification PASSED" in text
    pruned = tmp_path / "net.pruned.onnx"
    assert os.path.getsize(pruned) < 0.5 * os.path.getsize(small_onnx)


def test_convert_with_a_sparsity_table(small_onnx, tmp_path, capsys):
    assert main(["prune", small_onnx, "--pattern", "1x4", "--sparsity", "0.8",
                 "--layer", r"^6\.=0.2", "--kinds", "conv1x1", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "net.pruned.onnx"), "--sparsity-table",
                 str(tmp_path / "net.sparsity.json"), "--to", "mnn,tflite",
                 "--out", str(tmp_path / "conv")]) == 0
    text = capsys.readouterr().out
    assert "sparse weights" in text and "<= 30%" in text
    assert "DENSIFY 2" in text                  # 2.weight and 8.weight; 6.weight (20%) dense
    report = json.load(open(tmp_path / "conv" / "net.pruned.report.json"))
    runs = {(t["target"], r["weight"]): r["runs"] for t in report["targets"]
            for r in t["details"]["sparsity"]["layers"]}
    assert runs[("mnn", "2.weight")] == "sparse" and runs[("mnn", "6.weight")] == "dense"
    assert runs[("tflite", "8.weight")] == "dense (stored sparse)"


def test_bad_pattern_and_table_are_clear_errors(small_onnx, tmp_path, capsys):
    assert main(["prune", small_onnx, "--pattern", "diagonal", "--out", str(tmp_path)]) == 2
    assert "unknown sparsity pattern 'diagonal'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "edgert.sparsity-table", "version": 1,
                               "weights": {"2.weight": {"pattern": "n:m", "n": 4, "m": 4,
                                                        "measured": 0.5,
                                                        "mask_source": "zeros"}}}))
    assert main(["convert", small_onnx, "--sparsity-table", str(bad), "--out",
                 str(tmp_path / "x")]) == 2
    assert "n:m needs n < m" in capsys.readouterr().err


def test_table_that_does_not_fit_the_weights(small_onnx, tmp_path, capsys):
    def table(**entry):
        path = tmp_path / f"t{len(entry)}.json"
        path.write_text(json.dumps({"format": "edgert.sparsity-table", "version": 1, "weights": {
            "2.weight": {"pattern": "unstructured", "mask_source": "target", **entry}}}))
        return str(path)

    assert main(["convert", small_onnx, "--sparsity-table", table(target=0.8), "--out",
                 str(tmp_path / "a"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert any("do not reach their target" in n and "2.weight" in n
               for n in rep["source"]["notes"])
    (row,) = rep["targets"][0]["details"]["sparsity"]["layers"]
    assert row["runs"] == "dense" and row["zeros"] == 0
    assert main(["convert", small_onnx, "--sparsity-table", table(measured=0.8, target=0.8),
                 "--out", str(tmp_path / "b")]) == 2
    assert "table says unstructured sparsity 0.8000, the weight has 0.0000" in \
        capsys.readouterr().err
