"""The runtime commands as a user runs them: `python -m edgert ...` in a child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def edgert_cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "edgert", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_info_json_describes_model(models):
    d = json.loads(edgert_cli("info", models["tflite_int8"], "--json").stdout)
    assert d["format"] == "tflite" and d["quantized"] is True
    assert d["op_counts"] == {"FULLY_CONNECTED": 1}
    assert d["inputs"][0]["quantization"]["zero_point"] == [3]
    assert d["size_bytes"] == os.path.getsize(models["tflite_int8"])


def test_info_onnx_counts_ops_and_prints_table(models):
    d = json.loads(edgert_cli("info", models["onnx"], "--json").stdout)
    assert d["op_counts"] == {"Conv": 1, "Relu": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
    assert d["inputs"][0]["shape"] == ["batch", 3, 16, 16]
    table = edgert_cli("info", models["onnx"]).stdout
    assert "GlobalAveragePool" in table and "batch" in table


def test_run_with_npz_and_npy_writes_outputs(models, tmp_path):
    w, b = models["fc_weights"]
    x = np.random.default_rng(0).standard_normal((2, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    for inp in ("x.npy", "x.npz"):
        out = tmp_path / f"out_{inp}.npz"
        edgert_cli("run", models["tflite"], "--input", tmp_path / inp, "--output", out)
        np.testing.assert_allclose(np.load(out)["y"], np.maximum(x @ w.T + b, 0), atol=1e-5)


def test_mnn_json_output_is_clean_json(models):
    """MNN prints banners on the C stdout; --json output must still parse."""
    proc = edgert_cli("run", models["mnn"], "--json")
    d = json.loads(proc.stdout)
    assert d["outputs"][0]["shape"] == [1, 10]


def test_bench_json_is_the_device_runner_format(models):
    d = json.loads(edgert_cli("bench", models["mnn"], "--runs", 7, "--warmup", 1,
                              "--threads", 1, "--json", "--latencies").stdout)
    assert d["runs"] == 7 and len(d["latencies_ms"]) == 7 and d["threads"] == 1
    assert d["engine"] == "mnn" and d["min_ms"] <= d["median_ms"] <= d["p99_ms"]


def test_errors_exit_2_with_message(models, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage!" * 10)
    proc = edgert_cli("info", bad, check=False)
    assert proc.returncode == 2
    assert "edgert info: error:" in proc.stderr and "no TFL3 identifier" in proc.stderr
    assert "Traceback" not in proc.stderr
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3), np.float32))
    proc = edgert_cli("run", models["tflite"], "-i", tmp_path / "wrong.npy", check=False)
    assert proc.returncode == 2 and "expects shape ?x12, got 1x3" in proc.stderr


def test_engines_lists_all_three():
    rows = json.loads(edgert_cli("engines", "--json").stdout)
    assert {r["engine"] for r in rows} == {"litert", "mnn", "onnxruntime"}
    assert all(r["available"] for r in rows)


def test_import_edgert_stays_light():
    code = ("import sys, edgert\n"
            "heavy = [m for m in ('torch', 'onnx', 'MNN', 'ai_edge_litert', 'onnxruntime', "
            "'tflite_runtime', 'rich', 'paramiko', 'matplotlib') if m in sys.modules]\n"
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_info_mnn_counts_mnn_ops(models):
    d = json.loads(edgert_cli("info", models["mnn"], "--json").stdout)
    ops = d["op_counts"]
    assert ops.get("Convolution", 0) >= 1 and ops.get("Input") == 1
    assert d["outputs"][0]["shape"] == [1, 10]


def test_run_on_an_image_names_the_classes(capsys, tmp_path):
    """The Android demo's bundled digits model on its bundled sample images (held-out
    digits): the image goes through edgert.preprocess, the top class is the digit."""
    pytest.importorskip("PIL")
    pytest.importorskip("MNN")
    from edgert.cli import main

    assets = os.path.join(ROOT, "android_demo", "app", "src", "main", "assets")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)))
    right = 0
    for digit in range(10):
        image = os.path.join(assets, "samples", f"digit_{digit}.png")
        assert main(["run", os.path.join(assets, "digits_mlp.mnn"), "--input", image,
                     "--labels", str(labels), "--top-k", "2", "--json"]) == 0
        top = json.loads(capsys.readouterr().out)["top_k"]["classes"]
        assert len(top) == 2 and top[0]["score"] >= top[1]["score"]
        right += top[0]["label"] == f"digit {digit}"
    assert right >= 9


@pytest.mark.parametrize("missing, command, extra, code", [
    ("onnx_ir", ["convert", "zoo:dynamic_batch_cnn", "--to", "tflite"], "convert", 2),
    ("paramiko", ["farm", "devices", "--inventory", "{inv}"], "farm", 0),   # listed offline
])
def test_a_missing_optional_package_names_the_extra(tmp_path, missing, command, extra, code):
    """A runtime-only install (numpy + rich) asked to convert or reach a board: which
    extra to install, no traceback."""
    inv = tmp_path / "devices.toml"
    inv.write_text('[[device]]\nname = "b"\ntransport = "ssh"\nhost = "127.0.0.1"\n'
                   'port = 9\nconnect_timeout = 1\n')
    argv = [a.replace("{inv}", str(inv)) for a in command] + ["--out", str(tmp_path / "o")] \
        if command[0] == "convert" else [a.replace("{inv}", str(inv)) for a in command]
    script = (f"import sys; sys.modules[{missing!r}] = None\n"
              f"from edgert.cli import main\nsys.exit(main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert f"pip install 'edgert[{extra}]'" in (proc.stderr + proc.stdout).replace("\n", "")
    assert "Traceback" not in proc.stderr
