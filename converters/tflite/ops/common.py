"""Helpers shared by several op families: SAME/VALID padding choice, constant checks.

Padding: TFLite convolutions and pools know two paddings, VALID (none) and SAME
(``total = max((ceil(in/s)-1)*s + k_eff - in, 0)``, the smaller half first).
ONNX pads are explicit. ``choose_padding`` first drops padding no window reads
(PyTorch's symmetric pads often leave a bottom/right row unused at stride 2),
then uses SAME when the remaining pads are exactly SAME's, VALID when none are
left, and otherwise VALID after an explicit PAD op with the effective pads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from converters.layout.graph import attr, is_const, rank_of, shape_of


@dataclass
class PaddingChoice:
    mode: str                              # "SAME" or "VALID"
    explicit: Optional[List[List[int]]]    # per spatial dim [before, after], when a PAD is needed
    effective: Optional[List[List[int]]] = None   # the pads windows actually read


def onnx_pads(node, in_hw: Sequence[Optional[int]], kernel: Sequence[int],
              strides: Sequence[int], dilations: Sequence[int]) -> Optional[List[int]]:
    """The node's pads ``[t, l, b, r]`` with auto_pad resolved (None if it needs unknown dims)."""
    n = len(kernel)
    auto = attr(node, "auto_pad", "NOTSET")
    if auto in ("NOTSET", None, ""):
        return list(attr(node, "pads", None) or [0] * (2 * n))
    if auto == "VALID":
        return [0] * (2 * n)
    pads = [0] * (2 * n)
    for d in range(n):
        if in_hw[d] is None:
            return None
        k_eff = (kernel[d] - 1) * dilations[d] + 1
        out = -(-in_hw[d] // strides[d])
        total = max((out - 1) * strides[d] + k_eff - in_hw[d], 0)
        small, big = total // 2, total - total // 2
        pads[d], pads[d + n] = (small, big) if auto == "SAME_UPPER" else (big, small)
    return pads


def choose_padding(in_hw: Sequence[Optional[int]], kernel: Sequence[int],
                   strides: Sequence[int], dilations: Sequence[int], pads: Sequence[int],
                   ceil_mode: bool = False) -> Optional[PaddingChoice]:
    """SAME, VALID, or VALID after an explicit pad; ``None`` if unknown dims prevent a choice."""
    n = len(kernel)
    effective, same_ok = [], True
    for d in range(n):
        before, after = int(pads[d]), int(pads[d + n])
        k_eff = (kernel[d] - 1) * dilations[d] + 1
        size = in_hw[d]
        if size is None:
            if before == after == 0:
                effective.append([0, 0])
                same_ok = False
                continue
            if strides[d] == 1 and before == after and 2 * before == k_eff - 1 and not ceil_mode:
                effective.append([before, after])
                continue
            if ceil_mode:        # the extra cell ceil mode adds depends on the size
                return None
            # an explicit PAD of exactly the ONNX pads, then VALID: floor((n + b + a - k) / s)
            # + 1 outputs whatever n is (padding unused at the end changes nothing)
            effective.append([before, after])
            same_ok = False
            continue
        span = size + before + after - k_eff
        steps = (-(-span // strides[d]) if ceil_mode else span // strides[d])
        out = steps + 1
        used_after = max(0, (out - 1) * strides[d] + k_eff - size - before)
        effective.append([before, used_after])
        same_out = -(-size // strides[d])
        total = max((same_out - 1) * strides[d] + k_eff - size, 0)
        if out != same_out or [before, used_after] != [total // 2, total - total // 2]:
            same_ok = False
    if all(b == a == 0 for b, a in effective):
        return PaddingChoice("VALID", None, effective)
    if same_ok:
        return PaddingChoice("SAME", None, effective)
    return PaddingChoice("VALID", effective, effective)


def spatial_attrs(node, n: int) -> Tuple[List[int], List[int], List[int]]:
    """(kernel, strides, dilations) of a conv/pool node with ``n`` spatial dims."""
    kernel = attr(node, "kernel_shape", None)
    if kernel is None and len(node.inputs) > 1 and shape_of(node.inputs[1]) is not None:
        kernel = shape_of(node.inputs[1])[2:]
    strides = attr(node, "strides", None) or [1] * n
    dilations = attr(node, "dilations", None) or [1] * n
    return list(kernel), list(strides), list(dilations)


def need_2d(node) -> Optional[str]:
    r = rank_of(node.inputs[0])
    if r != 4:
        return (f"only 2-D (NCHW, rank 4) inputs are supported, this one has rank {r}"
                if r is not None else "the input rank is unknown")
    return None


def need_const(node, i: int, what: str) -> Optional[str]:
    if len(node.inputs) > i and node.inputs[i] is not None and not is_const(node.inputs[i]):
        return f"the {what} is computed at run time; TFLite needs it constant here"
    return None


def first_reason(*reasons: Optional[str]) -> Optional[str]:
    for r in reasons:
        if r:
            return r
    return None
