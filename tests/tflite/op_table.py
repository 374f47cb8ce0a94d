"""The op table: one row per (op, inputs, attributes) variant, grouped by lowering family.

Every row is converted by the tflite backend and run by the real LiteRT
interpreter; ONNX Runtime on the same single-node model is the reference. The
rows cover each padding mode (SAME, VALID, explicit PAD), dilation, groups,
layout-sensitive axes on NCHW inputs (so the NHWC rewrite of every axis is
checked), broadcasting constants, and the recurrent ops.
"""
from __future__ import annotations

import numpy as np

from tests.tflite.conftest import OpCase, const, rt

_r = np.random.default_rng(1)


def w(*shape, scale=0.3):
    return (_r.standard_normal(shape) * scale).astype(np.float32)


def i64(v):
    return np.asarray(v, dtype=np.int64)


X = lambda *s, seed=0: rt("x", s, seed)  # noqa: E731
NONE = ("", None, True)            # an omitted optional input
WIDE = ("x", np.array([[-100, -60, -20, -3, -0.5, 0, 0.5, 3],
                       [20, 60, 88, 89, 95, 100, -1e-3, 1e-3]], np.float32), False)

CONV = [
    OpCase("conv_same_3x3", "Conv", [X(1, 4, 9, 9), const("w", w(6, 4, 3, 3)), const("b", w(6))],
           {"pads": [1, 1, 1, 1]}),
    OpCase("conv_valid_stride2", "Conv", [X(1, 3, 10, 10), const("w", w(5, 3, 3, 3))],
           {"strides": [2, 2]}),
    OpCase("conv_explicit_pad_stride2", "Conv", [X(1, 3, 10, 10), const("w", w(5, 3, 3, 3))],
           {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    OpCase("conv_asymmetric_pads", "Conv", [X(1, 2, 8, 7), const("w", w(3, 2, 3, 2))],
           {"pads": [0, 2, 1, 0]}),
    OpCase("conv_dilation2", "Conv", [X(1, 3, 11, 11), const("w", w(4, 3, 3, 3))],
           {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    OpCase("conv_7x7_stride2_pad3", "Conv", [X(1, 3, 16, 16), const("w", w(8, 3, 7, 7))],
           {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    OpCase("conv_auto_pad_same_upper", "Conv", [X(1, 3, 9, 9), const("w", w(4, 3, 4, 4))],
           {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    OpCase("depthwise_3x3", "Conv", [X(1, 6, 8, 8), const("w", w(6, 1, 3, 3)), const("b", w(6))],
           {"group": 6, "pads": [1, 1, 1, 1]}),
    OpCase("depthwise_multiplier2_stride2", "Conv", [X(1, 4, 9, 9), const("w", w(8, 1, 3, 3))],
           {"group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    OpCase("depthwise_dilated", "Conv", [X(1, 4, 12, 12), const("w", w(4, 1, 3, 3))],
           {"group": 4, "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    OpCase("grouped_conv", "Conv", [X(1, 8, 6, 6), const("w", w(8, 4, 3, 3))],
           {"group": 2, "pads": [1, 1, 1, 1]}),
    OpCase("conv_transpose_k2s2", "ConvTranspose", [X(1, 4, 5, 5), const("w", w(4, 3, 2, 2)),
                                                     const("b", w(3))], {"strides": [2, 2]}),
    OpCase("conv_transpose_k4s2p1_same", "ConvTranspose", [X(1, 4, 5, 5),
                                                            const("w", w(4, 2, 4, 4))],
           {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    OpCase("conv_transpose_k3s2p1_op1_crop", "ConvTranspose", [X(1, 3, 4, 4),
                                                                const("w", w(3, 2, 3, 3))],
           {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    OpCase("conv_transpose_k3s1", "ConvTranspose", [X(1, 3, 5, 6), const("w", w(3, 4, 3, 3))]),
    # 1-D (NCW): the 2-D kernels on a [N, 1, W, C] view
    OpCase("conv1d_same_k5", "Conv", [X(1, 4, 16), const("w", w(6, 4, 5)), const("b", w(6))],
           {"pads": [2, 2]}),
    OpCase("conv1d_explicit_pad_stride2", "Conv", [X(1, 3, 15), const("w", w(5, 3, 3))],
           {"strides": [2], "pads": [1, 1]}),
    OpCase("conv1d_depthwise_dilated", "Conv", [X(1, 4, 20), const("w", w(4, 1, 3))],
           {"group": 4, "dilations": [2], "pads": [2, 2]}),
    OpCase("conv1d_depthwise_multiplier2", "Conv", [X(1, 3, 10), const("w", w(6, 1, 3))],
           {"group": 3}),
    OpCase("conv1d_grouped_stride2", "Conv", [X(2, 8, 12), const("w", w(8, 4, 3))],
           {"group": 2, "strides": [2]}),
    OpCase("conv_transpose1d_k4s2p1", "ConvTranspose", [X(1, 4, 7), const("w", w(4, 3, 4)),
                                                        const("b", w(3))],
           {"strides": [2], "pads": [1, 1]}),
    OpCase("conv_transpose1d_output_padding_crop", "ConvTranspose",
           [X(1, 3, 5), const("w", w(3, 2, 3))],
           {"strides": [2], "pads": [1, 1], "output_padding": [1]}),
]

POOL = [
    OpCase("maxpool_2x2", "MaxPool", [X(1, 3, 8, 8)], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    OpCase("maxpool_3x3_s2_p1", "MaxPool", [X(1, 3, 9, 9)],
           {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    OpCase("maxpool_ceil_mode", "MaxPool", [X(1, 2, 7, 7)],
           {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    OpCase("avgpool_same_excl_pad", "AveragePool", [X(1, 3, 6, 6)],
           {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    OpCase("avgpool_count_include_pad", "AveragePool", [X(1, 3, 6, 6)],
           {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    OpCase("avgpool_2x2_s2", "AveragePool", [X(1, 4, 8, 8)],
           {"kernel_shape": [2, 2], "strides": [2, 2]}),
    OpCase("global_avgpool", "GlobalAveragePool", [X(1, 5, 7, 6)]),
    OpCase("global_maxpool", "GlobalMaxPool", [X(1, 5, 7, 6)]),
    OpCase("maxpool1d_k3_s2_p1", "MaxPool", [X(1, 3, 11)],
           {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    OpCase("avgpool1d_count_include_pad", "AveragePool", [X(1, 4, 9)],
           {"kernel_shape": [3], "strides": [2], "pads": [1, 1], "count_include_pad": 1}),
    OpCase("avgpool1d_k2_s2", "AveragePool", [X(2, 3, 8)], {"kernel_shape": [2], "strides": [2]}),
    OpCase("global_avgpool_1d", "GlobalAveragePool", [X(1, 5, 7)]),
]

FC = [
    OpCase("gemm_transB_bias", "Gemm", [X(2, 12), const("w", w(5, 12)), const("b", w(5))],
           {"transB": 1}),
    OpCase("gemm_alpha_beta", "Gemm", [X(3, 6), const("w", w(6, 4)), const("b", w(1, 4))],
           {"alpha": 0.5, "beta": 2.0}),
    OpCase("gemm_matrix_c", "Gemm", [X(3, 6), const("w", w(6, 4)), const("c", w(3, 4))]),
    OpCase("gemm_two_activations", "Gemm", [X(3, 6), rt("b", (4, 6), 3)], {"transB": 1}),
    OpCase("matmul_const_2d", "MatMul", [X(4, 8), const("w", w(8, 3))]),
    OpCase("matmul_const_3d_input", "MatMul", [X(2, 5, 8), const("w", w(8, 6))]),
    OpCase("matmul_batched", "MatMul", [X(2, 3, 4, 5), rt("b", (2, 3, 5, 6), 4)]),
    OpCase("matmul_broadcast_batch", "MatMul", [X(2, 4, 5), rt("b", (5, 3), 5)]),
]

ELEMENTWISE = [
    OpCase("add_channel_bias_nchw", "Add", [X(1, 4, 5, 5), const("c", w(4, 1, 1))]),
    OpCase("sub_two_inputs", "Sub", [X(2, 3, 4), rt("b", (2, 3, 4), 7)]),
    OpCase("mul_broadcast_row", "Mul", [X(2, 3, 4), const("c", w(4))]),
    OpCase("div_positive", "Div", [X(2, 3, 4), rt("b", (2, 3, 4), 8, low=0.5, high=2.0)]),
    OpCase("max_variadic", "Max", [X(3, 4), rt("b", (3, 4), 2), rt("c", (3, 4), 3)]),
    OpCase("min_scalar_const", "Min", [X(3, 4), const("c", np.float32(0.25))]),
    OpCase("pow_square", "Pow", [X(3, 4), const("e", np.float32(2.0))]),
    OpCase("pow_general", "Pow", [rt("x", (3, 4), 0, low=0.1, high=2.0), const("e", np.float32(1.7))]),
    OpCase("sqrt", "Sqrt", [rt("x", (3, 4), 0, low=0.1, high=4.0)]),
    OpCase("exp", "Exp", [X(3, 4)]),
    OpCase("log", "Log", [rt("x", (3, 4), 0, low=0.1, high=4.0)]),
    OpCase("neg", "Neg", [X(3, 4)]),
    OpCase("abs", "Abs", [X(3, 4)]),
    OpCase("reciprocal", "Reciprocal", [rt("x", (3, 4), 0, low=0.5, high=3.0)]),
    OpCase("floor", "Floor", [X(3, 4)]),
    OpCase("sum_variadic", "Sum", [X(3, 4), rt("b", (3, 4), 2), rt("c", (1, 4), 3)]),
    OpCase("ceil", "Ceil", [X(3, 4)]),
    OpCase("round_half_even", "Round", [("x", np.array([[0.5, 1.5, 2.5, -0.5, -1.5, 0.2]],
                                                        np.float32), False)]),
    OpCase("sin", "Sin", [X(3, 4)]),
    OpCase("cos", "Cos", [X(3, 4)]),
    OpCase("sign", "Sign", [X(3, 4)]),
    OpCase("equal", "Equal", [("x", np.array([[1, 2, 3, 4]], np.float32), False),
                              const("c", np.array([1, 0, 3, 0], np.float32))]),
    OpCase("greater", "Greater", [X(3, 4), rt("b", (3, 4), 2)]),
    OpCase("greater_or_equal", "GreaterOrEqual", [X(3, 4), const("c", np.float32(0.0))]),
    OpCase("less", "Less", [X(3, 4), rt("b", (3, 4), 2)]),
    OpCase("less_or_equal", "LessOrEqual", [X(3, 4), const("c", np.float32(0.1))]),
    OpCase("and", "And", [("a", np.array([[True, False, True]]), False),
                          ("b", np.array([[True, True, False]]), False)]),
    OpCase("or", "Or", [("a", np.array([[True, False, False]]), False),
                        ("b", np.array([[False, False, True]]), False)]),
    OpCase("not", "Not", [("a", np.array([[True, False, True]]), False)]),
    OpCase("identity", "Identity", [X(2, 3)]),
    OpCase("where", "Where", [("c", np.random.default_rng(0).random((3, 4)) > 0.5, False),
                              X(3, 4, seed=1), rt("y", (3, 4), 2)]),
]

ACTIVATION = [
    OpCase("relu", "Relu", [X(1, 3, 4, 4)]),
    OpCase("clip_relu6", "Clip", [X(2, 8, seed=3), const("lo", np.float32(0)),
                                  const("hi", np.float32(6))]),
    OpCase("clip_n1_1", "Clip", [X(2, 8), const("lo", np.float32(-1)), const("hi", np.float32(1))]),
    OpCase("clip_other_bounds", "Clip", [X(2, 8), const("lo", np.float32(-0.3)),
                                         const("hi", np.float32(0.7))]),
    OpCase("clip_min_only", "Clip", [X(2, 8), const("lo", np.float32(0.2))]),
    OpCase("leaky_relu", "LeakyRelu", [X(2, 8)], {"alpha": 0.2}),
    OpCase("prelu_channel", "PRelu", [X(1, 3, 4, 4), const("s", w(3, 1, 1))]),
    OpCase("sigmoid", "Sigmoid", [X(2, 8)]),
    OpCase("tanh", "Tanh", [X(2, 8)]),
    OpCase("hard_sigmoid_torch", "HardSigmoid", [X(2, 16)],
           {"alpha": 1.0 / 6, "beta": 0.5}),
    OpCase("hard_sigmoid_default", "HardSigmoid", [X(2, 16)]),
    OpCase("hard_swish", "HardSwish", [X(1, 4, 3, 3)]),
    OpCase("elu", "Elu", [X(2, 8)]),
    OpCase("gelu_exact", "Gelu", [X(2, 8)], opset=20),
    OpCase("gelu_tanh", "Gelu", [X(2, 8)], {"approximate": "tanh"}, opset=20),
    # no TFLite builtin: decomposed (converters/passes/decompose.py); WIDE reaches past
    # exp's float32 overflow (88.7), where a naive log(1 + exp(x)) gives inf
    OpCase("softplus_wide_range", "Softplus", [WIDE]),
    OpCase("mish_wide_range", "Mish", [WIDE]),
    OpCase("mish_nchw", "Mish", [X(1, 3, 4, 4)]),
    OpCase("selu", "Selu", [WIDE]),
    OpCase("celu_alpha2", "Celu", [WIDE], {"alpha": 2.0}),
    OpCase("elu_alpha_half", "Elu", [WIDE], {"alpha": 0.5}),
    OpCase("thresholded_relu", "ThresholdedRelu", [X(3, 5)], {"alpha": 0.3}),
    OpCase("softsign", "Softsign", [WIDE]),
]

SHAPE = [
    OpCase("reshape_nchw_flatten", "Reshape", [X(1, 3, 4, 5), const("s", i64([1, -1]))]),
    OpCase("reshape_split_channels", "Reshape", [X(1, 6, 2, 2), const("s", i64([1, 2, 3, 4]))]),
    OpCase("flatten_axis1", "Flatten", [X(2, 3, 2, 2)], {"axis": 1}),
    OpCase("squeeze_axis", "Squeeze", [X(1, 3, 1, 4), const("a", i64([2]))]),
    OpCase("unsqueeze_axis", "Unsqueeze", [X(3, 4), const("a", i64([1]))]),
    OpCase("transpose_4d", "Transpose", [X(1, 2, 3, 4)], {"perm": [0, 3, 1, 2]}),
    OpCase("transpose_3d", "Transpose", [X(2, 3, 4)], {"perm": [2, 0, 1]}),
    OpCase("concat_channels_nchw", "Concat", [X(1, 2, 3, 3), rt("b", (1, 4, 3, 3), 2)],
           {"axis": 1}),
    OpCase("concat_width_with_const", "Concat", [X(1, 2, 3, 3), const("c", w(1, 2, 3, 2))],
           {"axis": 3}),
    OpCase("split_equal_channels", "Split", [X(1, 6, 2, 2)], {"axis": 1, "num_outputs": 2},
           n_outputs=2),
    OpCase("split_unequal_last", "Split", [X(2, 7), const("s", i64([3, 4]))], {"axis": 1},
           n_outputs=2),
    OpCase("slice_neg_starts", "Slice", [X(2, 6, 5), const("s", i64([-4, 1])),
                                         const("e", i64([-1, 4])), const("a", i64([1, 2]))]),
    OpCase("slice_step2_nchw_channels", "Slice", [X(1, 8, 3, 3), const("s", i64([1])),
                                                  const("e", i64([8])), const("a", i64([1])),
                                                  const("st", i64([2]))]),
    OpCase("slice_reverse", "Slice", [X(3, 5), const("s", i64([-1])), const("e", i64([-10**9])),
                                      const("a", i64([1])), const("st", i64([-1]))]),
    OpCase("gather_scalar_axis0", "Gather", [X(3, 2, 4), const("i", i64(1))], {"axis": 0}),
    OpCase("gather_vector_axis1", "Gather", [X(2, 5, 3), const("i", i64([4, 0, 2]))],
           {"axis": 1}),
    OpCase("gather_nd_const_indices", "GatherND",
           [X(4, 5, 3), const("i", i64([[[0, 1], [3, -1]], [[2, 2], [1, 0]]]))]),
    OpCase("gather_nd_runtime_indices", "GatherND",
           [X(4, 5), ("i", np.array([[3], [0], [2]], np.int64), False)]),
    OpCase("gather_embedding_runtime_ids", "Gather",
           [const("table", w(10, 4)), ("ids", np.array([[1, 7, 3]], np.int64), False)]),
    OpCase("pad_constant_nchw", "Pad", [X(1, 2, 3, 3), const("p", i64([0, 0, 1, 2, 0, 0, 2, 1]))]),
    OpCase("pad_value", "Pad", [X(2, 3), const("p", i64([1, 0, 0, 2])),
                                const("v", np.float32(1.5))]),
    OpCase("pad_reflect", "Pad", [X(1, 2, 4, 4), const("p", i64([0, 0, 1, 1, 0, 0, 1, 1]))],
           {"mode": "reflect"}),
    OpCase("tile", "Tile", [X(2, 3), const("r", i64([2, 1]))]),
    OpCase("expand", "Expand", [X(3, 1), const("s", i64([2, 3, 4]))]),
    OpCase("depth_to_space_dcr", "DepthToSpace", [X(1, 8, 2, 3)], {"blocksize": 2}),
    OpCase("depth_to_space_crd_pixel_shuffle", "DepthToSpace", [X(2, 12, 3, 2)],
           {"blocksize": 2, "mode": "CRD"}),
    OpCase("space_to_depth", "SpaceToDepth", [X(1, 2, 4, 6)], {"blocksize": 2}),
    OpCase("cast_to_int32", "Cast", [rt("x", (3, 4), 0, low=-5, high=5)], {"to": 6}),
]

REDUCE = [
    OpCase("reduce_mean_hw_keep", "ReduceMean", [X(1, 3, 4, 5), const("a", i64([2, 3]))]),
    OpCase("reduce_mean_channels_nokeep", "ReduceMean", [X(1, 3, 4, 5), const("a", i64([1]))],
           {"keepdims": 0}),
    OpCase("reduce_sum_last", "ReduceSum", [X(2, 3, 4), const("a", i64([-1]))]),
    OpCase("reduce_max_all", "ReduceMax", [X(2, 3, 4)], {"keepdims": 0}),
    OpCase("reduce_min_axes_attr_opset13", "ReduceMin", [X(2, 3, 4)], {"axes": [1]}, opset=13),
    OpCase("reduce_prod", "ReduceProd", [rt("x", (2, 3), 0, low=0.5, high=1.5),
                                         const("a", i64([1]))]),
    OpCase("reduce_l2", "ReduceL2", [X(2, 3, 4), const("a", i64([2]))]),
    OpCase("reduce_sum_square", "ReduceSumSquare", [X(2, 3, 4), const("a", i64([1]))]),
    # no TFLite builtin: decomposed (converters/passes/decompose.py)
    OpCase("reduce_l1_channels_nchw", "ReduceL1", [X(1, 3, 4, 5), const("a", i64([1]))]),
    OpCase("reduce_log_sum", "ReduceLogSum", [rt("x", (2, 3, 4), 0, low=0.1, high=2.0),
                                              const("a", i64([2]))], {"keepdims": 0}),
    OpCase("reduce_log_sum_exp_wide", "ReduceLogSumExp", [WIDE, const("a", i64([1]))]),
    OpCase("reduce_log_sum_exp_all_opset13", "ReduceLogSumExp", [X(2, 3, 4)], {"keepdims": 0},
           opset=13),
    OpCase("mod_fmod", "Mod", [X(3, 4, seed=2), const("m", np.float32(0.7))], {"fmod": 1}),
    OpCase("argmax_channels_nchw", "ArgMax", [X(1, 5, 3, 3)], {"axis": 1, "keepdims": 0}),
    OpCase("argmin_keepdims", "ArgMin", [X(2, 6)], {"axis": 1}),
    OpCase("cumsum_channels_nchw", "CumSum", [X(1, 3, 4, 5), const("a", i64(1))]),
    OpCase("cumsum_exclusive_reverse", "CumSum", [X(2, 6), const("a", i64(-1))],
           {"exclusive": 1, "reverse": 1}),
    OpCase("topk_last_axis", "TopK", [X(3, 10), const("k", i64([4]))], n_outputs=2),
    OpCase("topk_smallest_channels_nchw", "TopK", [X(1, 6, 3, 2), const("k", i64([2]))],
           {"axis": 1, "largest": 0}, n_outputs=2),
]

RESIZE = [
    OpCase("resize_nearest_asymmetric", "Resize",
           [X(1, 2, 3, 4), NONE, const("sc", np.array([1, 1, 2, 2], np.float32))],
           {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor"}),
    OpCase("resize_bilinear_half_pixel", "Resize",
           [X(1, 2, 3, 4), NONE, const("sc", np.array([1, 1, 2, 2], np.float32))],
           {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}),
    OpCase("resize_bilinear_align_corners", "Resize",
           [X(1, 2, 3, 4), NONE, NONE,
            const("sz", i64([1, 2, 7, 5]))],
           {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    OpCase("upsample_opset9_nearest", "Upsample",
           [X(1, 2, 3, 3), const("sc", np.array([1, 1, 2, 3], np.float32))], {"mode": "nearest"},
           opset=9),
    OpCase("resize_nearest_half_pixel", "Resize",
           [X(1, 2, 3, 3), NONE, const("sc", np.array([1, 1, 2, 2], np.float32))],
           {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
            "nearest_mode": "round_prefer_ceil"}),
]

NORM = [
    OpCase("softmax_last_axis", "Softmax", [X(2, 3, 5)]),
    OpCase("softmax_channels_nchw", "Softmax", [X(1, 4, 3, 3)], {"axis": 1}),
    OpCase("softmax_middle_axis", "Softmax", [X(2, 5, 3)], {"axis": 1}),
    OpCase("softmax_opset11_flatten_tail", "Softmax", [X(2, 3, 4)], {"axis": 1}, opset=11),
    OpCase("log_softmax", "LogSoftmax", [X(2, 6)]),
    OpCase("layer_norm_last", "LayerNormalization", [X(2, 5, 8), const("g", w(8)),
                                                     const("b", w(8))], {"epsilon": 1e-5}),
    OpCase("layer_norm_two_axes", "LayerNormalization", [X(2, 3, 4), const("g", w(3, 4)),
                                                         const("b", w(3, 4))], {"axis": 1}),
    OpCase("instance_norm", "InstanceNormalization", [X(1, 3, 4, 5), const("g", w(3)),
                                                      const("b", w(3))]),
    OpCase("instance_norm_rank3", "InstanceNormalization", [X(2, 3, 7), const("g", w(3)),
                                                            const("b", w(3))]),
    OpCase("group_norm_opset18_per_group", "GroupNormalization",
           [X(1, 6, 4, 5), const("g", w(3)), const("b", w(3))], {"num_groups": 3},
           out_shapes=[(1, 6, 4, 5)]),   # ONNX infers no shapes for GroupNormalization
    OpCase("group_norm_opset21_1d", "GroupNormalization",
           [X(2, 4, 9), const("g", w(4)), const("b", w(4))], {"num_groups": 2}, opset=21,
           out_shapes=[(2, 4, 9)]),
    OpCase("batch_norm_unfolded", "BatchNormalization",
           [X(1, 3, 4, 4), const("g", w(3)), const("b", w(3)), const("m", w(3)),
            const("v", np.abs(w(3)) + 0.5)]),
    OpCase("lp_norm_l2", "LpNormalization", [X(3, 6)], {"axis": -1, "p": 2}),
]

H = 5


def lstm_w(d, i):
    return const("W", w(d, 4 * H, i)), const("R", w(d, 4 * H, H)), const("B", w(d, 8 * H))


def gru_w(d, i):
    return const("W", w(d, 3 * H, i)), const("R", w(d, 3 * H, H)), const("B", w(d, 6 * H))


RECURRENT = [
    OpCase("lstm_forward", "LSTM", [X(6, 2, 3), *lstm_w(1, 3)], {"hidden_size": H},
           n_outputs=3),
    OpCase("lstm_bidirectional_initial_state", "LSTM",
           [X(4, 1, 3), *lstm_w(2, 3), NONE, rt("h0", (2, 1, H), 5),
            rt("c0", (2, 1, H), 6)],
           {"hidden_size": H, "direction": "bidirectional"}, n_outputs=3),
    OpCase("lstm_batch_first_layout1", "LSTM", [X(2, 5, 3), *lstm_w(1, 3)],
           {"hidden_size": H, "layout": 1}, n_outputs=2, reference="layout1_via_layout0"),
    OpCase("gru_linear_before_reset", "GRU", [X(5, 2, 3), *gru_w(1, 3)],
           {"hidden_size": H, "linear_before_reset": 1}, n_outputs=2),
    OpCase("gru_reverse_lbr0", "GRU", [X(5, 1, 3), *gru_w(1, 3)],
           {"hidden_size": H, "direction": "reverse"}, n_outputs=2),
]

FAMILIES = {"conv": CONV, "pool": POOL, "fc": FC, "elementwise": ELEMENTWISE,
            "activation": ACTIVATION, "shape": SHAPE, "reduce": REDUCE, "resize": RESIZE,
            "norm": NORM, "recurrent": RECURRENT}

CASES = [c for fam, rows in FAMILIES.items() for c in rows]
for _fam, _rows in FAMILIES.items():
    for _c in _rows:
        _c.family = _fam
