"""Which clamps are named activations, and which of them each engine fuses.

One table for the question every layer asks of a Relu or a Clip after a conv or
matmul: the graph pass that marks producers (``converters.passes.fuse_activations``),
the TFLite writer that folds them into ``fused_activation_function``
(``converters.tflite.context``) or lowers a lone Clip (``tflite/ops/activation.py``),
the int8 table completion and quant-debug that skip the fused intermediate, and the
MNN compression-params exporter that names a layer by its fused ReLU6's output.

Bounds are compared exactly (ONNX stores them as float constants; 6.0 is exact):
``Clip(0, 6)`` is RELU6, ``Clip(-1, 1)`` RELU_N1_TO_1, ``Clip(0, inf)`` RELU and
``Clip(0, 1)`` RELU_0_TO_1, an op TFLite has but cannot fuse. Pure Python on the
runtime floor: the converters and the table code below them both read it.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple

Bounds = Tuple[Optional[float], Optional[float]]     # (min, max); None: unbounded

CLIP_ACTIVATIONS: Dict[Bounds, str] = {
    (0.0, None): "RELU",
    (0.0, 6.0): "RELU6",
    (-1.0, 1.0): "RELU_N1_TO_1",
    (0.0, 1.0): "RELU_0_TO_1",
}

# What a producer can carry as its fused activation, per engine: TFLite's
# ActivationFunctionType values; MNN's converter folds Relu and Relu6 into convolutions.
FUSED: Dict[str, FrozenSet[str]] = {
    "tflite": frozenset({"RELU", "RELU6", "RELU_N1_TO_1"}),
    "mnn": frozenset({"RELU", "RELU6"}),
}
TFLITE_FUSED = FUSED["tflite"]


def clip_activation(lo: Optional[float], hi: Optional[float]) -> Optional[str]:
    """The activation ``Clip(lo, hi)`` is (``None`` for other bounds, NaN included)."""
    return CLIP_ACTIVATIONS.get((lo, hi))


def activation_name(op_type: str, lo: Optional[float] = None,
                    hi: Optional[float] = None) -> Optional[str]:
    """The activation a Relu, or a Clip with constant bounds ``lo``/``hi``, amounts to."""
    if op_type == "Relu":
        return "RELU"
    if op_type == "Clip":
        return clip_activation(lo, hi)
    return None


def fused_code(op_type: str, lo: Optional[float] = None, hi: Optional[float] = None,
               engine: str = "tflite") -> Optional[str]:
    """The activation ``engine`` fuses into the producer for this op, or ``None``."""
    name = activation_name(op_type, lo, hi)
    return name if name in FUSED[engine] else None
