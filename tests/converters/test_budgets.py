"""The converter's memory budgets: constant folding sizes a node's output before it
evaluates it, verification sizes its random inputs before it draws them, and hostile
ONNX files end in a ModelFileError or ConversionError, never a traceback or the
machine's memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from converters.errors import ConversionError
from converters.passes.fold_constants import FoldConstants, output_bytes
from converters.verify import random_feeds
from edgert.errors import InputError, ModelFileError
from tests.fuzz import crafted

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The child converts under a 1.5 GiB data limit, so that a regression shows as an
# error here instead of taking this machine's memory (the bomb needs 5 GiB unchecked).
_CONVERT = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_DATA, (3 << 29, resource.getrlimit(resource.RLIMIT_DATA)[1]))
import onnx
from onnx import TensorProto, helper
from converters.api import convert
import edgert

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

# a tiny model converted first loads every module and engine a conversion uses, so
# the bomb's own cost is the growth of the peak after it (imports differ by platform)
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
tiny = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])],
                                           "tiny", [x], [y]))
onnx.save(tiny, sys.argv[2] + ".tiny.onnx")
convert(sys.argv[2] + ".tiny.onnx", ["tflite"], out_dir=sys.argv[2] + ".tiny")
before = peak()
try:
    convert(sys.argv[1], ["tflite"], out_dir=sys.argv[2])
    outcome = "converted"
except edgert.EdgertError as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "peak_rss": peak(), "growth": peak() - before}))
"""


def _convert_in_child(path, out_dir) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CONVERT, str(path), str(out_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_expand_bomb_is_refused_before_it_is_evaluated(tmp_path):
    """284 bytes of ONNX whose constant chain goes through a 4 GiB tensor."""
    path = crafted.onnx_expand_bomb(str(tmp_path / "bomb.onnx"))
    assert os.path.getsize(path) < 300
    res = _convert_in_child(path, tmp_path / "out")
    assert res["outcome"].startswith("ConversionError: node 'expand_bomb' (Expand) would make "
                                     "a constant of 1024x1024x1024 = 4.0 GiB"), res
    assert "EDGERT_MAX_CONSTANT_BYTES" in res["outcome"]
    print(f"\nexpand bomb: peak RSS of the converting process "
          f"{res['peak_rss'] / 2 ** 20:.0f} MB, {res['growth'] / 2 ** 20:.0f} MB for the bomb")
    # the refused constant is 4 GiB (its 1024x1024 source 4 MB); 4 MB here, and a
    # quarter of the bomb evaluated would already be 1 GiB
    assert res["growth"] < 256 * 2 ** 20


def test_constant_of_shape_beyond_int64_is_refused_by_name(tmp_path):
    """[3, 2^62] elements overflowed np.prod; Python ints do not."""
    path = crafted.onnx_constant_of_shape_overflow(str(tmp_path / "cos.onnx"))
    res = _convert_in_child(path, tmp_path / "out")
    assert res["outcome"].startswith(
        "ConversionError: node 'cos_overflow' (ConstantOfShape) would make a constant of "
        "3x4611686018427387904"), res


def _ir(proto: onnx.ModelProto) -> ir.Model:
    onnx.checker.check_model(proto)
    return ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))


def _expand_model(n: int, weight_elems: int = 0) -> ir.Model:
    """y = x + ReduceMax(Expand(ConstantOfShape([n, n]), [n, n, n])), and, when
    ``weight_elems``, z = Transpose(w) for a float weight w of that many elements."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Constant", [], ["s2"], value=helper.make_tensor(
                 "s2", TensorProto.INT64, [2], [n, n])),
             helper.make_node("Constant", [], ["s3"], value=helper.make_tensor(
                 "s3", TensorProto.INT64, [3], [n, n, n])),
             helper.make_node("ConstantOfShape", ["s2"], ["c"], value=helper.make_tensor(
                 "one", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("Expand", ["c", "s3"], ["e"], name="expand"),
             helper.make_node("ReduceMax", ["e"], ["r"], keepdims=0),
             helper.make_node("Add", ["x", "r"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
    inits = []
    if weight_elems:
        w = np.arange(weight_elems, dtype=np.float32).reshape(2, -1)
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("Transpose", ["w"], ["z"], name="transpose_w"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, w.T.shape))
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          outputs, inits)
    return _ir(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_folding_within_the_budget_still_folds():
    """64^3 floats = 1 MiB: folded to one number as before."""
    model = _expand_model(64)
    FoldConstants().run(model)
    assert [n.op_type for n in model.graph] == ["Add"]


def test_budget_comes_from_the_pass_or_the_environment(monkeypatch):
    with pytest.raises(ConversionError, match=r"node 'expand' \(Expand\) would make a constant "
                                              r"of 64x64x64 = 1.0 MiB out of 16.0 KiB"):
        FoldConstants(max_constant_bytes=512 << 10).run(_expand_model(64))
    monkeypatch.setenv("EDGERT_MAX_CONSTANT_BYTES", "512K")
    with pytest.raises(ConversionError, match="over the limit of 512.0 KiB"):
        FoldConstants().run(_expand_model(64))
    monkeypatch.setenv("EDGERT_MAX_CONSTANT_BYTES", "8M")
    FoldConstants().run(_expand_model(64))        # raised: folds again


def test_a_large_constant_that_does_not_grow_is_left_unfolded_with_a_reason():
    """Transposing a 1 MiB weight with a 512 KiB budget: no bomb (output = input), so
    the node stays, and the refusal says why."""
    model = _expand_model(8, weight_elems=1 << 18)
    res = FoldConstants(max_constant_bytes=512 << 10).run(model)
    assert "Transpose" in [n.op_type for n in model.graph]
    [refusal] = res.refusals
    assert (refusal.node, refusal.op_type) == ("transpose_w", "Transpose")
    assert "1.0 MiB" in refusal.reason and "512.0 KiB" in refusal.reason


def test_output_size_is_known_before_evaluation_in_python_ints():
    """Without an inferred shape the size comes from the node's constant inputs; products
    past 2^63 stay exact."""
    def const(name, array):
        return ir.Value(name=name, const_value=ir.tensor(array, name=name))

    cos = ir.Node("", "ConstantOfShape", [const("s", np.array([3, 1 << 62], np.int64))],
                  num_outputs=1)
    cos.outputs[0].dtype = ir.DataType.FLOAT
    assert output_bytes(cos) == 3 * (1 << 62) * 4
    expand = ir.Node("", "Expand", [const("d", np.ones((4, 1), np.float32)),
                                    const("t", np.array([1 << 40], np.int64))], num_outputs=1)
    expand.outputs[0].dtype = ir.DataType.FLOAT
    assert output_bytes(expand) == 4 * (1 << 40) * 4


def test_random_feeds_size_the_inputs_before_drawing_them():
    with pytest.raises(InputError, match=r"verification input 'x' of shape 1x3x30000x30000 "
                                          r"float32 would take 10.1 GiB"):
        random_feeds([("x", (1, 3, 30000, 30000), np.float32)])
    feeds = random_feeds([("x", (1, 3, 8, 8), np.float32)], seed=3)
    assert feeds["x"].shape == (1, 3, 8, 8) and feeds["x"].dtype == np.float32


@pytest.mark.parametrize("builder, message", [
    (crafted.onnx_bad_utf8_op, "fails the ONNX checker on a name or string that is not UTF-8"),
    (lambda p: crafted.onnx_external_data(p, "../../../../etc/passwd"),
     "points outside the directory"),
    (lambda p: crafted.onnx_external_data(p, "weights.bin"), "not a readable ONNX model"),
])
def test_hostile_onnx_files_are_model_file_errors_in_the_frontend(tmp_path, builder, message):
    from converters.frontends.onnx_load import load_onnx

    path = builder(str(tmp_path / "m.onnx"))
    with pytest.raises(ModelFileError, match=message):
        load_onnx(path, {}, False)
