"""Bad input: an op TFLite cannot take gives an UnsupportedOpError naming the node, the op
type, the reason and the supported ops, before any file is written; options the writer
cannot honor give UnsupportedOptionError; the registry rejects duplicates."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from converters.backends import BackendOptions, get_backend
from edgert.errors import UnsupportedOptionError
from converters.errors import UnsupportedOpError
from tests.tflite.conftest import OpCase, build_model, const, convert_ir, rt

F = onnx.TensorProto.FLOAT


def _error(case: OpCase, tmp_path) -> UnsupportedOpError:
    model, _ = build_model(case)
    out = tmp_path / "never.tflite"
    with pytest.raises(UnsupportedOpError) as info:
        convert_ir(model, out)
    assert not out.exists()
    return info.value


def test_unknown_op_names_node_op_and_supported(tmp_path):
    err = _error(OpCase("nonzero", "NonZero", [rt("x", (2, 3))]), tmp_path)
    assert (err.node, err.op_type, err.target) == ("nonzero_0", "NonZero", "tflite")
    assert "data-dependent output shape" in err.reason
    assert {"Conv", "Gemm", "LSTM", "Softmax"} <= set(err.supported)
    msg = str(err)
    assert "'nonzero_0'" in msg and "'NonZero'" in msg and "Supported ops: " in msg \
        and "Conv" in msg


def test_node_level_refusal_gives_the_reason(tmp_path):
    err = _error(OpCase("cubic", "Resize", [rt("x", (1, 2, 3, 3)), ("", None, True),
                                            rt("s", (4,), 1)], {"mode": "cubic"}), tmp_path)
    assert err.op_type == "Resize" and "computed at run time" in err.reason
    assert "decomposition" in err.reason        # and why the decomposition cannot take it
    err = _error(OpCase("conv_rt_w", "Conv", [rt("x", (1, 2, 4, 4)), rt("w", (3, 2, 1, 1), 1)]),
                 tmp_path)
    assert "weight is computed at run time" in err.reason
    err = _error(OpCase("pad_edge", "Pad", [rt("x", (2, 3)),
                                            const("p", np.array([1, 1, 1, 1], np.int64))],
                        {"mode": "edge"}), tmp_path)
    assert "edge" in err.reason


def test_opset_out_of_range():
    model = helper.make_model(helper.make_graph(
        [helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2, name="old_lstm")], "g",
        [helper.make_tensor_value_info(n, F, s) for n, s in
         (("x", [2, 1, 3]), ("w", [1, 8, 3]), ("r", [1, 8, 2]))],
        [helper.make_tensor_value_info("y", F, None)]),
        opset_imports=[helper.make_opsetid("", 1)], ir_version=3)
    with pytest.raises(UnsupportedOpError, match="opset 1 is outside"):
        get_backend("tflite").check(ir.from_proto(model), BackendOptions())


def test_check_reports_before_convert(tmp_path):
    model, _ = build_model(OpCase("einsum", "Einsum", [rt("a", (2, 3)), rt("b", (3, 4), 1)],
                                  {"equation": "ij,jk->ik"}))
    with pytest.raises(UnsupportedOpError, match="Einsum"):
        get_backend("tflite").check(ir.from_proto(model), BackendOptions())


@pytest.mark.parametrize("options,match", [
    (dict(precision="int8"), "quantization table"),
    (dict(precision="int4_weights"), "not supported"),
    (dict(io_layout="nchw"), "io_layout"),
    (dict(io_dtype="int8"), "io_dtype"),
    (dict(sparsity_table=object()), "SparsityTable"),
])
def test_options_refused(options, match, tmp_path):
    model, _ = build_model(OpCase("relu", "Relu", [rt("x", (2, 3))]))
    with pytest.raises(UnsupportedOptionError, match=match):
        convert_ir(model, tmp_path / "x.tflite", **options)
    assert not (tmp_path / "x.tflite").exists()


def test_duplicate_lowering_is_an_error():
    from converters.tflite.registry import load_all, lowering
    load_all()
    with pytest.raises(ValueError, match="registered twice"):
        @lowering("Relu", emits=("RELU",))
        def again(node, ctx):  # pragma: no cover - never registered
            pass
    # in a private table: a disjoint opset range is fine, an overlapping one is not
    from edgert.op_registry import OpRegistry
    table: OpRegistry = OpRegistry("TFLite lowering")
    first = lowering("Op", emits=("ADD",), opsets=(1, 10), table=table)(lambda n, c: None)
    lowering("Op", emits=("ADD",), opsets=(11, None), table=table)(lambda n, c: None)
    assert callable(first) and len(table.registrations("Op")) == 2
    with pytest.raises(ValueError, match="registered twice"):
        lowering("Op", emits=("ADD",), opsets=(5, 12), table=table)(lambda n, c: None)


def test_every_lowering_emits_real_builtins():
    from converters.tflite import registry
    from converters.tflite.schema import builtin_code
    for entry in registry.all_lowerings():
        for b in entry.emits:
            builtin_code(b)                                   # raises for a misspelling
        assert entry.doc, f"{entry.fn.__name__} has no docstring"
