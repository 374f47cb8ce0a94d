"""Files never lost (issue 16) and many variants from one export (issue 19), as a user
of the command line sees them: exit codes, messages, the files in the folder."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest

from edgert.errors import InputError
from edgert.outputs import OutputExistsError, OutputFolder
from tests.cli.helpers import edgert
from tests.converters import onnx_builders as ob


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("outputs") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


@pytest.fixture(scope="module")
def calib_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "x.npy"
    np.save(path, np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32))
    return path


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_existing_outputs_are_refused_before_any_work(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path, "--no-verify")
    assert code == 0, err
    before = _snapshot(tmp_path)
    assert set(before) == {"padconv.optimized.onnx", "padconv.mnn", "padconv.report.json"}
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path, "--no-verify")
    assert code == 2 and out == ""
    assert ("already holds 3 of the files this would write: padconv.optimized.onnx, "
            "padconv.mnn, padconv.report.json; pass --overwrite") in err
    assert _snapshot(tmp_path) == before            # nothing touched, no staging left over
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path, "--no-verify",
                            "--overwrite")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == sorted(before)
    assert json.loads((tmp_path / "padconv.report.json").read_text())["ok"]


def test_an_out_that_is_a_file_or_unwritable_is_a_clear_error(capsys, conv_onnx, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", afile)
    assert code == 2 and f"output folder {afile} is a file, not a folder" in err
    assert afile.read_text() == "keep me"
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", afile / "sub")
    assert code == 2 and "a part of its path is a file" in err
    if os.path.isdir("/sys/kernel"):        # sysfs: no new files, even for root
        code, out, err = edgert(capsys, "convert", conv_onnx, "--out", "/sys/kernel")
        assert code == 2 and "output folder /sys/kernel is not writable" in err
        assert "Traceback" not in err


def test_a_file_is_replaced_only_when_complete(tmp_path):
    (tmp_path / "m.mnn").write_bytes(b"old model")
    folder = OutputFolder(tmp_path, overwrite=True)
    with pytest.raises(RuntimeError):
        with folder.writing("m.mnn") as staged:
            staged.write_bytes(b"half a mod")
            (staged.parent / "m.compression.json").write_text("{}")   # a writer's sidecar
            raise RuntimeError("the writer died")
    folder.close()
    assert (tmp_path / "m.mnn").read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["m.mnn"]
    with OutputFolder(tmp_path, overwrite=True) as folder:
        with folder.writing("m.mnn") as staged:
            staged.write_bytes(b"new model")
            assert not (tmp_path / "m.mnn").read_bytes() == b"new model"   # not yet
    assert (tmp_path / "m.mnn").read_bytes() == b"new model"
    assert os.listdir(tmp_path) == ["m.mnn"]
    with pytest.raises(OutputExistsError, match="pass overwrite=True"):
        OutputFolder(tmp_path).refuse_existing(["m.mnn", "m.tflite"])
    assert issubclass(OutputExistsError, InputError)


def test_three_precisions_from_one_export(capsys, conv_onnx, calib_npy, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--to", "mnn,tflite", "--out", tmp_path,
                            "--precision", "fp32,fp16,int8", "--calibration-data", calib_npy,
                            "--json")
    assert code == 0, err
    rep = json.loads(out)
    files = [os.path.basename(t["path"]) for t in rep["targets"]]
    assert files == ["padconv.mnn", "padconv.tflite", "padconv.fp16.mnn",
                     "padconv.fp16.tflite", "padconv.int8.mnn", "padconv.int8.tflite"]
    assert [t["precision"] for t in rep["targets"]] == ["fp32", "fp32", "fp16", "fp16",
                                                        "int8", "int8"]
    assert all(t["verification"]["passed"] for t in rep["targets"])
    # exported and optimized once; quantize, reference, convert, verify per variant
    assert list(rep["variant_stages"]) == ["fp32", "fp16", "int8"]
    for stages in rep["variant_stages"].values():
        assert list(stages) == ["quantize", "reference", "convert", "verify"]
    assert rep["precision"]["chosen"] == "fp32,fp16,int8"
    on_disk = json.loads((tmp_path / "padconv.report.json").read_text())
    assert len(on_disk["targets"]) == 6                 # one report, every variant
    assert set(files) <= set(os.listdir(tmp_path))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".edgert-partial")]


def test_python_api_takes_a_list_of_precisions(conv_onnx, tmp_path):
    from converters import convert

    rep = convert(str(conv_onnx), "tflite", out_dir=tmp_path, precision=["fp16", "fp32"],
                  verify=False)
    assert [os.path.basename(t.path) for t in rep.targets] == ["padconv.fp16.tflite",
                                                             "padconv.tflite"]
    assert rep.variants == ["fp16", "fp32"] and rep.verdict == "not verified"
    with pytest.raises(InputError, match="names a precision twice"):
        convert(str(conv_onnx), "tflite", out_dir=tmp_path, precision="fp16,fp16")


@pytest.mark.parametrize("value, words", [
    ("fp32,fp61", "unknown precision 'fp61' (did you mean 'fp16'?)"),
    ("fp16,fp16", "names a precision twice"),
    ("auto,fp16", "auto cannot be combined"),
])
def test_a_bad_precision_list_is_refused_while_parsing(capsys, value, words):
    code, out, err = edgert(capsys, "convert", "m.onnx", "--precision", value)
    assert code == 2 and words in err


def test_int8_among_several_without_data_fails_before_any_file(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path,
                            "--precision", "fp32,int8")
    assert code == 2 and "--precision int8 needs a quantization table (--quant-table)" in err
    assert os.listdir(tmp_path) == []


def test_pruned_conversion_names_never_collide_with_the_unpruned(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--to", "mnn,tflite",
                            "--out", tmp_path, "--no-verify")
    assert code == 0, err
    before = _snapshot(tmp_path)
    code, out, err = edgert(capsys, "prune", conv_onnx, "--to", "mnn,tflite", "--out", tmp_path,
                            "--sparsity", "0.5", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert [os.path.basename(t["path"]) for t in rep["conversion"]["targets"]] == [
        "padconv.pruned.mnn", "padconv.pruned.tflite"]
    after = _snapshot(tmp_path)
    assert {k: after[k] for k in before} == before     # the unpruned files are untouched
    assert {"padconv.sparsity.json", "padconv.pruned.onnx",
            "padconv.pruned.report.json"} <= set(after)
    code, out, err = edgert(capsys, "prune", conv_onnx, "--to", "mnn", "--out", tmp_path)
    assert code == 2 and "padconv.sparsity.json, padconv.pruned.onnx" in err
    assert _snapshot(tmp_path) == after


def test_calibrate_and_run_refuse_an_existing_output(capsys, conv_onnx, calib_npy, tmp_path):
    table = tmp_path / "t.json"
    table.write_text("mine")
    code, out, err = edgert(capsys, "calibrate", conv_onnx, "--data", calib_npy, "-o", table)
    assert code == 2 and "t.json; pass --overwrite" in err and table.read_text() == "mine"
    code, out, err = edgert(capsys, "calibrate", conv_onnx, "--data", calib_npy, "-o", table,
                            "--overwrite")
    assert code == 0, err
    assert json.loads(table.read_text())["activations"]
    (tmp_path / "o.npz").write_bytes(b"mine")
    code, out, err = edgert(capsys, "run", conv_onnx, "-o", tmp_path / "o")
    assert code == 2 and "o.npz; pass --overwrite" in err
    code, out, err = edgert(capsys, "run", conv_onnx, "-o", tmp_path / "o", "--overwrite")
    assert code == 0, err
    assert list(np.load(tmp_path / "o.npz")) == ["y"]


def test_prune_converts_at_several_precisions(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "prune", conv_onnx, "--to", "tflite", "--out", tmp_path,
                            "--precision", "fp32,fp16", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert [os.path.basename(t["path"]) for t in rep["conversion"]["targets"]] == [
        "padconv.pruned.tflite", "padconv.pruned.fp16.tflite"]
    code, out, err = edgert(capsys, "prune", conv_onnx, "--out", tmp_path / "p",
                            "--precision", "fp16")
    assert code == 2 and "--precision is for the conversion: give --to as well" in err
