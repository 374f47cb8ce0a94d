"""``edgert run --timeout``: a run that does not end is stopped at the deadline with a
message (the worker process killed), a bad deadline is refused while parsing, and a run
with a deadline gives the numbers of a run without one."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.cli.helpers import edgert
from tests.fuzz import crafted


def test_a_run_that_never_ends_is_stopped_at_the_deadline(tmp_path, capsys):
    path = crafted.tflite_while_forever(str(tmp_path / "w.tflite"))
    t0 = time.perf_counter()
    code, out, err = edgert(capsys, "run", path, "--no-isolated-check", "--timeout", "1")
    assert code == 2, out + err
    assert "did not finish within 1 s" in err and "stopped" in err
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("bad", ["0", "-1", "soon"])
def test_a_bad_deadline_is_refused_while_parsing(tmp_path, capsys, bad):
    code, out, err = edgert(capsys, "run", str(tmp_path / "missing.tflite"), "--timeout", bad)
    assert code == 2 and "--timeout" in err and "Traceback" not in err


def test_a_run_with_a_deadline_gives_the_same_numbers(tmp_path, capsys):
    from onnx import TensorProto, helper, save

    g = helper.make_graph([helper.make_node("Tanh", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = tmp_path / "t.onnx"
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(1, 8)
    np.save(tmp_path / "x.npy", x)
    outs = []
    for extra in ([], ["--timeout", "60"]):
        out_file = tmp_path / f"y{len(extra)}.npz"
        code, out, err = edgert(capsys, "run", str(model), "-i", str(tmp_path / "x.npy"),
                                "-o", str(out_file), *extra)
        assert code == 0, out + err
        outs.append(np.load(out_file)["y"])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], np.tanh(x), rtol=1e-6, atol=1e-6)
