"""Every flag checked before any work: a user mistake is exit 2 with a message in the
command line's own words (flags, not Python arguments), a "did you mean", no traceback."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.cli.helpers import edgert, edgert_process
from tests.converters import onnx_builders as ob


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("flags") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


@pytest.mark.parametrize("argv, words", [
    (["convert", "m.onnx", "--precison", "fp16"], "--precison: did you mean --precision?"),
    (["bench", "m.tflite", "--warmpu", "3"], "--warmpu: did you mean --warmup?"),
    (["farm", "bench", "--runz", "3"], "--runz: did you mean --runs?"),
    (["convrt", "m.onnx"], "did you mean 'convert'?"),
    (["convert", "m.onnx", "--exporter", "dynamoo"], "did you mean 'dynamo'?"),
])
def test_a_misspelt_flag_or_choice_gets_a_suggestion(capsys, argv, words):
    code, out, err = edgert(capsys, *argv)
    assert code == 2 and words in err and "Traceback" not in err


@pytest.mark.parametrize("argv, words", [
    (["bench", "m.tflite", "--runs", "0"], "argument --runs: 0 is too small: at least 1"),
    (["bench", "m.tflite", "--warmup", "-1"], "argument --warmup: -1 is too small: at least 0"),
    (["bench", "m.tflite", "--runs", "ten"], "argument --runs: 'ten' is not a whole number"),
    (["farm", "bench", "x.tflite", "--warmup", "-2"], "argument --warmup: -2 is too small"),
    (["convert", "m.onnx", "--threshold", "foo=1"], "unknown threshold 'foo'"),
    (["convert", "m.onnx", "--threshold", "min_cosin=1"], "did you mean 'min_cosine'?"),
    (["convert", "m.onnx", "--threshold", "min_cosine=high"], "'high' is not a number"),
    (["convert", "m.onnx", "--input-shape", "x=1x0x8"], "dims must be at least 1"),
    (["prune", "m.onnx", "--sparsity", "1.5"], "at most 0.999"),
    (["calibrate", "m.onnx", "--data", "d", "-o", "t.json", "--percentile", "200"],
     "at most 100"),
    (["optimize", "m.onnx", "--eval", "e.npz", "--train", "t.npz", "--train-steps", "0"],
     "argument --train-steps: 0 is too small: at least 1"),
    (["optimize", "m.onnx", "--eval", "e.npz", "--train", "t.npz", "--train-steps", "50",
      "--train-epochs", "2"], "argument --train-epochs: not allowed with argument --train-steps"),
    (["optimize", "m.onnx", "--eval", "e.npz", "--train-steps", "50"],
     "--train-steps/--train-epochs fine-tune with --train DATA"),
])
def test_bad_values_are_refused_while_parsing(capsys, argv, words):
    """The model file does not exist: the flag is refused before anything looks at it."""
    code, out, err = edgert(capsys, *argv)
    assert code == 2 and words in err, err
    assert "no such file" not in err and "Traceback" not in err


def test_threshold_is_refused_before_the_conversion(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path,
                            "--threshold", "foo=1")
    assert code == 2 and "unknown threshold 'foo'" in err
    assert list(tmp_path.iterdir()) == []          # nothing was exported or written


def test_int8_without_data_names_the_flags(capsys, conv_onnx, tmp_path):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path,
                            "--precision", "int8", "--no-verify")
    assert code == 2
    assert "--quant-table" in err and "--calibration-data" in err
    assert "quant_table=" not in err and "calibration_data=" not in err


def test_a_file_of_no_known_format_says_rename_not_format_equals(capsys, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 64)
    code, out, err = edgert(capsys, "info", path)
    assert code == 2 and "rename the file" in err and "format=" not in err


@pytest.mark.parametrize("spec, words", [
    ("os:abort", "'os' is a Python standard-library module, not a model"),
    ("no/such/dir:model", "no/such/dir:model: no such file"),
])
def test_a_missing_path_with_a_colon_is_not_run_as_code(spec, words, tmp_path):
    """In a child: were ``os.abort`` called, the exit would be a signal, not 2."""
    proc = edgert_process("convert", spec, "--out", tmp_path / "o")
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr


def test_a_builtin_callable_is_not_called(capsys, tmp_path):
    (tmp_path / "net.py").write_text("from os import abort\n")
    code, out, err = edgert(capsys, "convert", f"{tmp_path / 'net.py'}:abort", "--out", tmp_path)
    assert code == 2 and "refusing to call it" in err


def test_help_says_code_specs_run_code(capsys):
    code, out, err = edgert(capsys, "convert", "--help")
    assert code == 0 and "RUN that file's / module's code" in " ".join(out.split())


def test_roofline_shape_takes_both_spellings(capsys):
    import argparse

    from edgert.cli.checks import shape_item

    assert shape_item("images=1x3x224x224") == ("images", (1, 3, 224, 224))
    assert shape_item("images=1,3,224,224") == ("images", (1, 3, 224, 224))
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=1x3x224x224"):
        shape_item("1x3x224x224")


@pytest.mark.parametrize("flag, value, words", [
    ("--passes", "fuse_pad_cnv", "unknown pass 'fuse_pad_cnv' (did you mean 'fuse_pad_conv'?)"),
    ("--quant-table", "missing.json", "--quant-table missing.json: no such file or folder"),
    ("--verify-inputs", "missing.npz", "--verify-inputs missing.npz: no such file or folder"),
    ("--calibration-data", "nodir", "--calibration-data nodir: no such file or folder"),
])
def test_names_in_flags_are_checked_before_the_export(capsys, conv_onnx, tmp_path, flag, value,
                                                      words):
    code, out, err = edgert(capsys, "convert", conv_onnx, "--out", tmp_path / "o", flag, value)
    assert code == 2 and words in err, err
    assert not (tmp_path / "o").exists()             # refused before any file
