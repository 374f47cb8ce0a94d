"""Damaged and wrong model files: a clear edgert error, never a crash.

Truncated and bit-flipped copies of a real model of every format are loaded and
run in a child Python process (so that a crash would show as a signal instead of
killing pytest). The child must exit normally and every file must either work
or raise an EdgertError.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import edgert
from edgert.errors import ModelFileError

_CHILD = r"""
import json, sys
import edgert
results = {}
for path in sys.argv[1:]:
    try:
        s = edgert.load(path)
        s.run(s.random_inputs(0))
        results[path] = "ok"
    except edgert.EdgertError as exc:
        results[path] = type(exc).__name__
print(json.dumps(results))
"""


def _damaged_copies(src: str, out_dir, n_flips: int = 14, seed: int = 0):
    data = open(src, "rb").read()
    rng = np.random.default_rng(seed)
    paths = []
    ext = os.path.splitext(src)[1]
    for frac in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        p = out_dir / f"trunc{int(frac * 100)}{ext}"
        p.write_bytes(data[: max(1, int(len(data) * frac))])
        paths.append(str(p))
    for k in range(n_flips):
        b = bytearray(data)
        # half the flips hit the header and tables (first 4 KiB), half anywhere
        span = min(len(b), 4096) if k % 2 == 0 else len(b)
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(0, span))] ^= 1 << int(rng.integers(0, 8))
        p = out_dir / f"flip{k}{ext}"
        p.write_bytes(bytes(b))
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("fmt", ["tflite", "tflite_int8", "mnn", "onnx"])
def test_damaged_files_never_crash(models, fmt, tmp_path):
    paths = _damaged_copies(models[fmt], tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CHILD, *paths], capture_output=True,
                          text=True, timeout=600, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == set(paths)
    allowed = {"ok", "ModelFileError", "EngineError", "InputError"}
    assert set(results.values()) <= allowed, results
    # truncation to 2% and 10% can never leave a usable model
    assert results[paths[0]] != "ok" and results[paths[1]] != "ok"


def test_truncated_tflite_is_named_before_the_engine(models, tmp_path):
    data = open(models["tflite"], "rb").read()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a valid tflite model"):
        edgert.load(str(p), check="structure")


def test_tflite_buffer_size_mismatch_is_caught(models, tmp_path):
    """A weight buffer whose size disagrees with its tensor's shape: rejected in Python."""
    from ai_edge_litert import schema_py_generated as s
    import flatbuffers

    m = s.ModelT.InitFromPackedBuf(open(models["tflite"], "rb").read(), 0)
    w = m.subgraphs[0].tensors[1]
    w.shape = [w.shape[0] + 1, w.shape[1]]  # claims more weights than the buffer holds
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    p = tmp_path / "lying.tflite"
    p.write_bytes(bytes(b.Output()))
    with pytest.raises(ModelFileError, match="needs 288 bytes but its buffer holds 240"):
        edgert.load(str(p), check="structure")


@pytest.mark.parametrize("name, content, message", [
    ("empty.tflite", b"", "the file is empty"),
    ("text.onnx", b"hello, I am not a model\n", "Protobuf parsing failed"),
    ("zip.onnx", b"\x0bnot a key" * 3, "not a protobuf field key"),
    ("page.mnn", b"<html><body>404</body></html>" * 4, "not a valid mnn model"),
    ("notes.txt", b"\x08\x07" * 20, "cannot tell the model format"),
    ("fake.tflite", b"\x08\x07\x12\x04" * 20, "no TFL3 identifier"),
])
def test_wrong_files(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        edgert.load(str(p))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        edgert.load(str(tmp_path / "nope.tflite"))
    with pytest.raises(ModelFileError, match="is a directory"):
        edgert.load(str(tmp_path))


def test_tflite_under_another_name_is_still_tflite(models, tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(open(models["tflite"], "rb").read())
    assert edgert.load(str(p)).format == "tflite"


def test_isolated_check_turns_an_engine_crash_into_an_error(models, tmp_path):
    """MNN segfaults on some bit flips that neither its own verifier nor our
    structural check catches (about 1 % of 1-3 flips of a small model). Find one
    (the search is seeded and bounded), prove it kills a process that loads it
    in-process, then prove that edgert.load's default isolated check reports it as
    a ModelFileError. Both loads run in child processes, so this test cannot take
    pytest down whatever happens."""
    data = open(models["mnn"], "rb").read()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def child(check: str, path) -> subprocess.CompletedProcess:
        code = ("import edgert, sys\n"
                "try:\n"
                f"    s = edgert.load(sys.argv[1], check={check!r})\n"
                "    s.run(s.random_inputs(0))\n"
                "    print('ok')\n"
                "except edgert.EdgertError as e:\n"
                "    print(type(e).__name__, e)\n")
        return subprocess.run([sys.executable, "-c", code, str(path)], cwd=root,
                              capture_output=True, text=True, timeout=300)

    rng = np.random.default_rng(7)
    crashing = None
    for _ in range(400):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / "m.mnn"
        p.write_bytes(bytes(b))
        if child("structure", p).returncode < 0:
            crashing = p
            break
    assert crashing is not None, "no crashing mutation in 400 seeded tries"
    proc = child("isolated", crashing)
    assert proc.returncode == 0, "the isolated check let the crash through"
    assert proc.stdout.strip().splitlines()[-1].startswith("ModelFileError")
    assert "mnn crashed (SIG" in proc.stdout


def test_mnn_tensor_index_out_of_range_is_caught_in_python(models, tmp_path):
    """The commonest crash of MNN on damaged files: a tensor index past the end."""
    import struct

    from edgert.flatbuf import root

    data = bytearray(open(models["mnn"], "rb").read())
    net = root(bytes(data))
    op = next(o for o in net.tables(3) if o.scalars(0, "i"))
    vec = op._indirect(0)  # the inputIndexes vector of that op
    struct.pack_into("<i", data, vec + 4, 9999)
    p = tmp_path / "bad_index.mnn"
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="has input tensor index 9999, but the net names"):
        edgert.load(str(p), check="structure")
