"""Resize / Upsample -> RESIZE_NEAREST_NEIGHBOR or RESIZE_BILINEAR on NHWC.

ONNX describes a resize by mode, coordinate transformation and nearest rounding;
TFLite by two flags. The pairs that agree exactly:

==========================================  ==============================================
ONNX                                          TFLite
==========================================  ==============================================
nearest, asymmetric, floor                    NEAREST (align_corners=0, half_pixel=0)
nearest, align_corners, round_prefer_ceil     NEAREST align_corners=1
nearest, (pytorch_)half_pixel, round_prefer_ceil  NEAREST half_pixel_centers=1
linear, asymmetric                            BILINEAR (0, 0)
linear, align_corners                         BILINEAR align_corners=1
linear, half_pixel / pytorch_half_pixel       BILINEAR half_pixel_centers=1
==========================================  ==============================================

(pytorch_half_pixel differs from half_pixel only for an output size of 1, which
the check rejects.) Anything else, cubic included, is refused with the reason.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from converters.layout.graph import attr, shape_of
from converters.tflite.ops.common import need_2d
from converters.tflite.registry import lowering
from converters.tflite.schema import options

_NEAREST = {("asymmetric", "floor"): (False, False),
            ("align_corners", "round_prefer_ceil"): (True, False),
            ("half_pixel", "round_prefer_ceil"): (False, True),
            ("pytorch_half_pixel", "round_prefer_ceil"): (False, True)}
_LINEAR = {"asymmetric": (False, False), "align_corners": (True, False),
           "half_pixel": (False, True), "pytorch_half_pixel": (False, True)}


def _flags(node) -> Tuple[Optional[str], Optional[Tuple[bool, bool]]]:
    mode = attr(node, "mode", "nearest")
    if node.op_type == "Upsample":
        coord, rounding = "asymmetric", "floor"
    else:
        coord = attr(node, "coordinate_transformation_mode", "half_pixel")
        rounding = attr(node, "nearest_mode", "round_prefer_floor")
    if mode == "nearest":
        return "RESIZE_NEAREST_NEIGHBOR", _NEAREST.get((coord, rounding))
    if mode in ("linear", "bilinear"):
        return "RESIZE_BILINEAR", _LINEAR.get(coord)
    return None, None


def check_resize(node) -> Optional[str]:
    reason = need_2d(node)
    if reason:
        return reason
    builtin, flags = _flags(node)
    if builtin is None:
        return f"mode={attr(node, 'mode')!r} has no TFLite kernel (nearest and linear do)"
    if flags is None:
        return (f"coordinate_transformation_mode="
                f"{attr(node, 'coordinate_transformation_mode', 'half_pixel')!r} with "
                f"nearest_mode={attr(node, 'nearest_mode', 'round_prefer_floor')!r} does not "
                f"match a TFLite resize")
    x, y = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    if y is None or y[2] is None or y[3] is None:
        return "the output size must be known at conversion time"
    if x[1] != y[1] or (x[0] != y[0]):
        return "only the spatial dims may be resized"
    if min(y[2], y[3]) == 1 and attr(node, "coordinate_transformation_mode", "") \
            == "pytorch_half_pixel":
        return "pytorch_half_pixel with an output size of 1"
    if attr(node, "antialias", 0):
        return "antialias=1 has no TFLite equivalent"
    return None


@lowering("Resize", "Upsample", emits=("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"),
          check=check_resize)
def lower_resize(node, ctx) -> None:
    """Resize the stored H, W to the output's static size."""
    builtin, (align, half) = _flags(node)
    x = ctx.input(node, 0)
    y = ctx.shape(node.outputs[0])
    size = ctx.const_tensor("resize_size", np.array(y[2:4], dtype=np.int32))
    kind = "ResizeBilinear" if builtin == "RESIZE_BILINEAR" else "ResizeNearestNeighbor"
    ctx.emit(builtin, [x, size], [ctx.output(node)],
             options(kind, alignCorners=align, halfPixelCenters=half))
