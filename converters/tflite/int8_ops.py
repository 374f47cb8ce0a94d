"""Which TFLite builtins run in full int8, and what their kernels demand of the parameters.

Kept apart from the rewrite (``full_int8.py``): this is the "can it, and on what
terms" layer, read from LiteRT's kernels and its quantizer's operator properties
(``operator_property.cc``):

* weighted ops: int8 data input, int8 per-channel symmetric weights on the
  output-channel axis of TFLite's layout, int32 bias with scale s_in * s_w;
* same-scale ops: the output must carry the input's scale and zero point (the
  kernels move bytes, or compare them: MAX_POOL_2D, RESHAPE, TRANSPOSE, PAD,
  RESIZE_BILINEAR...);
* requantized ops: one output scale, every input requantized to it (CONCATENATION
  copies bytes; MAXIMUM and MINIMUM compare raw int8 values);
* fixed-output ops: SOFTMAX and LOGISTIC write scale 1/256, zero point -128;
  TANH 1/128, 0 (the kernels check it);
* free ops: any output parameters (the kernel rescales): ADD, MUL, MEAN...;
  their constant operands are quantized per tensor.

Everything else stays float, with DEQUANTIZE/QUANTIZE around it. One registry row
(``Int8Kernel``) per builtin, so a builtin listed under two kinds fails at import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple, Union

from converters.tflite.schema import BUILTIN_DOMAIN
from edgert.op_registry import OpRegistry

KINDS = ("weighted", "same", "requant", "fixed", "free")


@dataclass(frozen=True)
class Int8Kernel:
    """What LiteRT's int8 kernel of one builtin demands."""

    kind: str                                            # one of KINDS
    weighted: Optional[Tuple[int, int, int, int]] = None  # data, weight, bias, out-channel axis
    fixed_output: Optional[Tuple[float, int]] = None      # (scale, zero point) it writes
    const_operands: bool = False                          # may take float constants (quantized
                                                          # per tensor with their own range)


KERNELS: OpRegistry[Int8Kernel] = OpRegistry("TFLite int8 kernel", domain=BUILTIN_DOMAIN)


def _add(kind: str, builtins: Union[Iterable[str], Dict[str, tuple]], field: str = "",
         const_operands: Iterable[str] = ()) -> None:
    """Register ``builtins`` as ``kind``; a dict gives each its ``field`` value."""
    takes = set(const_operands)
    for b in builtins:
        fields = {field: builtins[b]} if isinstance(builtins, dict) else {}
        KERNELS.add(b, Int8Kernel(kind, const_operands=b in takes, **fields), source=__name__)


_add("weighted", {"CONV_2D": (0, 1, 2, 0), "DEPTHWISE_CONV_2D": (0, 1, 2, 3),
                  "FULLY_CONNECTED": (0, 1, 2, 0), "TRANSPOSE_CONV": (2, 1, 3, 0)}, "weighted")

_add("same", ["MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS",
              "PAD", "PADV2", "STRIDED_SLICE", "SLICE", "GATHER", "SPLIT", "SPLIT_V",
              "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR", "PACK", "UNPACK",
              "TILE", "BROADCAST_TO", "REDUCE_MAX", "REDUCE_MIN",
              # interpolates the raw int8 values: no rescale in its kernel
              "RESIZE_BILINEAR",
              # int8 in, integer indices out (TOPK_V2's values keep the input's parameters)
              "ARG_MAX", "ARG_MIN", "TOPK_V2"])

# one output scale; inputs with other parameters are requantized to it: CONCATENATION
# copies bytes, MAXIMUM and MINIMUM compare the raw int8 values (their kernels rescale
# nothing: with inputs of other scales they picked the wrong element, cosine 0.56)
_add("requant", ["CONCATENATION", "MAXIMUM", "MINIMUM"],
     const_operands=["CONCATENATION", "MAXIMUM", "MINIMUM"])

_add("fixed", {"SOFTMAX": (1.0 / 256.0, -128), "LOGISTIC": (1.0 / 256.0, -128),
               "TANH": (1.0 / 128.0, 0)}, "fixed_output")

_add("free", ["ADD", "SUB", "MUL", "MEAN", "SUM", "HARD_SWISH", "RELU",
              "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
              "BATCH_MATMUL",
              "PRELU", "SQUARED_DIFFERENCE"],
     const_operands=["ADD", "SUB", "MUL", "PRELU", "SQUARED_DIFFERENCE"])


def kernel(builtin: str) -> Optional[Int8Kernel]:
    """The int8 kernel of ``builtin``, or None (it stays float)."""
    return KERNELS.lookup(builtin)


def kind(builtin: str) -> Optional[str]:
    """'weighted', 'same', 'requant', 'fixed', 'free' or None (no int8 kernel)."""
    k = kernel(builtin)
    return None if k is None else k.kind


def weighted_inputs(builtin: str) -> Tuple[int, int, int, int]:
    """(data input, weight input, bias input, output-channel axis) of a weighted builtin."""
    k = kernel(builtin)
    if k is None or k.weighted is None:
        raise KeyError(f"{builtin} has no weighted int8 kernel")
    return k.weighted


def fixed_output(builtin: str) -> Tuple[float, int]:
    """The (scale, zero point) a fixed-output builtin's int8 kernel writes."""
    k = kernel(builtin)
    if k is None or k.fixed_output is None:
        raise KeyError(f"{builtin} has no fixed-output int8 kernel")
    return k.fixed_output


def takes_const_operands(builtin: str) -> bool:
    """Whether the int8 kernel may read float constants (quantized per tensor)."""
    k = kernel(builtin)
    return k is not None and k.const_operands


# LiteRT's int8 ADD and SUB rescale both inputs to twice the larger input scale, shifted
# left by 20 bits, then to the output scale: a multiplier that must be below 1, or
# Prepare aborts the whole process (TFLITE_CHECK in QuantizeMultiplierSmallerThanOneExp):
# an input scale over 2^19 times the output's (a tensor holding an attention mask's
# -3.4e38 added to scores of a few units).
_RESCALE_SHIFT = {"ADD": 20, "SUB": 20}


def kernel_refuses(builtin: str, input_scales, output_scale: float) -> Optional[str]:
    """Why LiteRT's int8 kernel of ``builtin`` cannot take these scales (it would abort
    or compute nothing), or None."""
    scales = [float(x) for x in input_scales] + [float(output_scale)]
    if any(not (x > 0) or x == float("inf") for x in scales):
        return "a zero or non-finite quantization scale"
    shift = _RESCALE_SHIFT.get(builtin)
    if shift is not None and len(input_scales) == 2:
        top = max(float(x) for x in input_scales)
        if 2 * top / ((1 << shift) * float(output_scale)) >= 1.0:
            return (f"LiteRT's int8 {builtin} cannot rescale an input of scale {top:.3g} to "
                    f"an output of scale {float(output_scale):.3g} (over 2^{shift - 1} "
                    f"apart: its kernel would abort)")
    return None
