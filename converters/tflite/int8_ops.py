"""Which TFLite builtins run in full int8, and what their kernels demand of the parameters.

Kept apart from the rewrite (``full_int8.py``): this is the "can it, and on what
terms" layer, read from LiteRT's kernels and its quantizer's operator properties
(``operator_property.cc``):

* weighted ops: int8 data input, int8 per-channel symmetric weights on the
  output-channel axis of TFLite's layout, int32 bias with scale s_in * s_w;
* same-scale ops: the output must carry the input's scale and zero point (the
  kernels move bytes, or compare them: MAX_POOL_2D, RESHAPE, TRANSPOSE, PAD...);
* fixed-output ops: SOFTMAX and LOGISTIC write scale 1/256, zero point -128;
  TANH 1/128, 0 (the kernels check it);
* free ops: any output parameters (the kernel rescales): ADD, MUL, MEAN...;
  their constant operands are quantized per tensor.

Everything else stays float, with DEQUANTIZE/QUANTIZE around it.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

# builtin -> (data input, weight input, bias input, output-channel axis of the weight)
WEIGHTED: Dict[str, Tuple[int, int, int, int]] = {
    "CONV_2D": (0, 1, 2, 0),
    "DEPTHWISE_CONV_2D": (0, 1, 2, 3),
    "FULLY_CONNECTED": (0, 1, 2, 0),
    "TRANSPOSE_CONV": (2, 1, 3, 0),
}

SAME_SCALE = frozenset({
    "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "PAD",
    "PADV2", "STRIDED_SLICE", "SLICE", "GATHER", "SPLIT", "SPLIT_V", "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR", "PACK", "UNPACK", "TILE", "BROADCAST_TO",
    "REDUCE_MAX", "REDUCE_MIN",
    # int8 in, integer indices out (TOPK_V2's values keep the input's parameters)
    "ARG_MAX", "ARG_MIN", "TOPK_V2",
})

# concatenation takes one output scale; inputs with other parameters are requantized
REQUANTIZE_INPUTS = frozenset({"CONCATENATION"})

FIXED_OUTPUT: Dict[str, Tuple[float, int]] = {
    "SOFTMAX": (1.0 / 256.0, -128),
    "LOGISTIC": (1.0 / 256.0, -128),
    "TANH": (1.0 / 128.0, 0),
}

FREE = frozenset({
    "ADD", "SUB", "MUL", "MEAN", "SUM", "RESIZE_BILINEAR", "HARD_SWISH", "RELU", "RELU6",
    "RELU_N1_TO_1", "LEAKY_RELU", "MAXIMUM", "MINIMUM", "BATCH_MATMUL", "PRELU",
    "SQUARED_DIFFERENCE",
})

# float constant operands these ops may take (quantized per tensor with their own range)
CONST_OPERANDS = frozenset({"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "PRELU",
                            "SQUARED_DIFFERENCE", "CONCATENATION"})


def kind(builtin: str) -> Optional[str]:
    """'weighted', 'same', 'requant', 'fixed', 'free' or None (no int8 kernel)."""
    if builtin in WEIGHTED:
        return "weighted"
    if builtin in SAME_SCALE:
        return "same"
    if builtin in REQUANTIZE_INPUTS:
        return "requant"
    if builtin in FIXED_OUTPUT:
        return "fixed"
    if builtin in FREE:
        return "free"
    return None
