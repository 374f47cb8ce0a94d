"""Resize arithmetic: the per-axis taps (converters/passes/decompose_resize.py) against ONNX's
reference evaluator for every mode, and the TFLite builtin choice (tflite/ops/resize.py)
against LiteRT running it: where the check says RESIZE_* computes ONNX's resize, it does."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from converters.passes.decompose_resize import AxisResize, ResizeSpec, axis_matrix, parse_resize
from converters.tflite.ops.resize import native_flags
from converters.verify import assert_close
from tests.tflite.conftest import convert_ir, litert_run

F = onnx.TensorProto.FLOAT
COORDS = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
          "half_pixel_symmetric", "tf_crop_and_resize")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
SIZES = [(4, 2.0), (4, 0.6), (5, 1.7), (8, 0.25), (7, 1 / 3), (1, 4.0)]


def _model(n_in, attrs, sizes=None, scales=None, roi=None, shape=None):
    inits = [numpy_helper.from_array(np.asarray(roi if roi is not None else [], np.float32),
                                     "roi")]
    ins = ["x", "roi"]
    if scales is not None:
        inits.append(numpy_helper.from_array(np.asarray(scales, np.float32), "scales"))
        ins.append("scales")
    else:
        inits.append(numpy_helper.from_array(np.asarray(sizes, np.int64), "sizes"))
        ins += ["", "sizes"]
    g = helper.make_graph([helper.make_node("Resize", ins, ["y"], **attrs)], "g",
                          [helper.make_tensor_value_info("x", F, shape or [n_in, n_in])],
                          [helper.make_tensor_value_info("y", F, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    return onnx.shape_inference.infer_shapes(m)


def _combos():
    for mode, coord in itertools.product(("nearest", "linear", "cubic"), COORDS):
        extra = [{"nearest_mode": nm} for nm in NEAREST] if mode == "nearest" else \
            [{}, {"antialias": 1}, {"exclude_outside": 1, "cubic_coeff_a": -0.5}]
        for e in extra:
            yield mode, coord, e


@pytest.mark.parametrize("mode,coord,extra", list(_combos()),
                         ids=[f"{m}-{c}-{'-'.join(map(str, e.values()))}" for m, c, e in _combos()])
def test_axis_taps_equal_onnx_reference(mode, coord, extra):
    """The resize of an identity matrix along axis 0 is the axis's interpolation matrix."""
    for n_in, scale in SIZES:
        scale = float(np.float32(scale))          # as the model's float32 scales hold it
        n_out = int(scale * n_in)
        roi = [0.2, 0.0, 0.9, 1.0]
        attrs = {"mode": mode, "coordinate_transformation_mode": coord, **extra}
        model = _model(n_in, attrs, scales=[scale, 1.0], roi=roi)
        want = ReferenceEvaluator(model).run(None, {"x": np.eye(n_in, dtype=np.float32)})[0]
        spec = ResizeSpec(mode, coord, extra.get("nearest_mode", "round_prefer_floor"),
                          extra.get("cubic_coeff_a", -0.75), bool(extra.get("exclude_outside")),
                          bool(extra.get("antialias")), 0.0, [], 2)
        r0, r1 = (float(np.float32(v)) for v in (0.2, 0.9))       # the roi tensor's values
        got = axis_matrix(spec, AxisResize(0, n_in, n_out, scale, (r0, r1)))
        # the reference's float32 output and float32 coordinate inputs: a few float32 ulp
        np.testing.assert_allclose(got, want, atol=4e-6, err_msg=f"{n_in} x {scale}")


NATIVE = [("nearest", "asymmetric", "floor", (5, 7), (10, 21)),
          ("nearest", "half_pixel", "round_prefer_floor", (4, 4), (8, 12)),
          ("nearest", "half_pixel", "round_prefer_floor", (6, 8), (3, 4)),   # ties: decomposed
          ("nearest", "align_corners", "round_prefer_ceil", (3, 5), (7, 9)),
          ("nearest", "align_corners", "floor", (3, 5), (7, 9)),             # decomposed
          ("linear", "half_pixel", None, (5, 7), (8, 3)),
          ("linear", "align_corners", None, (4, 6), (7, 11)),
          ("linear", "asymmetric", None, (4, 6), (12, 18)),
          ("linear", "pytorch_half_pixel", None, (6, 4), (1, 9))]


@pytest.mark.parametrize("mode,coord,nearest,hw,out", NATIVE)
def test_builtin_choice_runs_onnx_resize_on_litert(mode, coord, nearest, hw, out, tmp_path):
    """Sizes given: the builtin when the check finds flags, the decomposition otherwise; both
    equal ONNX's reference on LiteRT (XNNPACK on)."""
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if nearest:
        attrs["nearest_mode"] = nearest
    model = _model(0, attrs, sizes=[1, 2, *out], shape=[1, 2, *hw])
    x = np.random.default_rng(0).standard_normal((1, 2, *hw)).astype(np.float32)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    flags = native_flags(parse_resize(next(iter(ir.from_proto(model).graph))))
    res = convert_ir(model, tmp_path / "r.tflite")
    used = {"RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"} & set(res.op_counts)
    assert bool(used) == (flags is not None), (flags, res.op_counts)
    assert_close(want, litert_run(res.path, {"x": x})["y"], "fp32")


def test_resize_refusal_names_run_time_sizes():
    """Sizes computed at run time: neither the builtin nor the decomposition can take it."""
    from converters.tflite.support import node_reason
    g = helper.make_graph([helper.make_node("Resize", ["x", "", "", "s"], ["y"], name="r")], "g",
                          [helper.make_tensor_value_info("x", F, [1, 2, 3, 3]),
                           helper.make_tensor_value_info("s", onnx.TensorProto.INT64, [4])],
                          [helper.make_tensor_value_info("y", F, None)])
    m = ir.from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]))
    why = node_reason(next(iter(m.graph)), 19)
    assert "computed at run time" in why and "decomposition" in why
