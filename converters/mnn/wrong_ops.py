"""``support.WRONG``'s rows: the ONNX ops (and attribute forms) MNN 3.6 lists but
computes wrongly, crashes or hangs on, each with the reason, measured with ONNX's
node tests (``python -m tests.conformance.runner --targets mnn``) and the tests of
tests/converters/test_mnn_rewrites.py. A node with a reason here is rewritten by
``rewrites.py`` when it has a rewrite that takes it, else refused before anything is
written (docs/TFLITE.md, "MNN: rewritten or refused")."""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
import onnx_ir as ir

from converters.mnn.support import WRONG

Reason = Optional[str]


def _ints(node: ir.Node, name: str) -> List[int]:
    return list(node.attributes.get_ints(name, []) or [])


def _const(v: Optional[ir.Value]) -> Optional[np.ndarray]:
    if v is None:
        return None
    t = ir.convenience.get_const_tensor(v)
    return None if t is None else np.asarray(t.numpy())


def _input(node: ir.Node, i: int) -> Optional[ir.Value]:
    return node.inputs[i] if len(node.inputs) > i else None


def _rank(v: Optional[ir.Value]) -> Optional[int]:
    return None if v is None or v.shape is None else len(v.shape)


def first(*checks: Callable[[ir.Node], Reason]) -> Callable[[ir.Node], Reason]:
    """The first reason any of ``checks`` gives."""
    def reason(node: ir.Node) -> Reason:
        for check in checks:
            why = check(node)
            if why:
                return why
        return None
    return reason


def _register(op: str, fn: Callable[[ir.Node], Reason]) -> None:
    WRONG.add(op, fn, source=__name__)


def _always(text: str) -> Callable[[ir.Node], Reason]:
    return lambda node: text


# -- reductions -------------------------------------------------------------------------

def _axes_input(node: ir.Node) -> Reason:
    if _input(node, 1) is not None:
        return (f"MNN's converter ignores the axes *input* of {node.op_type} (opset 18+) and "
                "reduces over every axis")
    return None


def _empty_axes(node: ir.Node) -> Reason:
    axes = _const(_input(node, 1))
    if axes is not None and axes.size == 0:
        return ("MNN reduces over no axis when the axes input is empty (ONNX: every axis, or "
                "none with noop_with_empty_axes=1)")
    return None


for _op in ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"):
    _register(_op, _axes_input)
for _op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"):
    _register(_op, _empty_axes)


# -- elementwise ------------------------------------------------------------------------

_register("Softplus", _always("MNN writes Softplus as LOG(1 + EXP(x)) and its EXP saturates "
                              "at x = 87, so Softplus(x) = 87 for every x > 87"))
_register("Less", _always("MNN's Less gives wrong results (about half the elements of a "
                          "random test)"))


def _mod(node: ir.Node) -> Reason:
    if node.attributes.get_int("fmod", 0) == 1:
        return "MNN's float Mod (fmod=1) gives wrong results"
    x = _input(node, 0)
    if x is not None and x.dtype in (ir.DataType.FLOAT, ir.DataType.FLOAT16,
                                     ir.DataType.DOUBLE):
        return "MNN's float Mod (fmod=0) is wrong for operands of mixed sign"
    return None


_register("Mod", _mod)
_register("Round", _always("MNN rounds halves away from zero (ONNX: to even)"))
_register("Shrink", _always("MNN's Shrink is wrong (shrink_hard, shrink_soft)"))


def _clip(node: ir.Node) -> Reason:
    lo, hi = _const(_input(node, 1)), _const(_input(node, 2))
    if lo is not None and hi is not None and float(lo) > float(hi):
        return "MNN's Clip with min > max gives min (ONNX: every value is max)"
    return None


_register("Clip", _clip)


def _prelu(node: ir.Node) -> Reason:
    x, s = _input(node, 0), _input(node, 1)
    shape = None if s is None or s.shape is None else list(s.shape)
    if shape is None or int(np.prod([d if isinstance(d, int) else 2 for d in shape])) == 1:
        return None
    r = _rank(x)
    if x is not None and x.shape is not None and list(x.shape) == shape:
        return None                               # one slope per element
    per_channel = r is not None and r >= 2 and (
        len(shape) == r - 1 and all(d == 1 for d in shape[1:]) or
        len(shape) == r and shape[0] == 1 and all(d == 1 for d in shape[2:]))
    if not per_channel:
        return (f"MNN's PRelu takes one slope per channel (axis 1); this slope {shape} "
                "broadcasts otherwise")
    return None


_register("PRelu", _prelu)


def _pow(node: ir.Node) -> Reason:
    a, b = _input(node, 0), _input(node, 1)
    if a is not None and b is not None and a.dtype is not None and b.dtype is not None \
            and a.dtype != b.dtype:
        return "MNN cannot run Pow with a base and an exponent of different types"
    return None


_register("Pow", _pow)


def _one_input(node: ir.Node) -> Reason:
    if len(node.inputs) == 1:
        return f"MNN's converter crashes on a {node.op_type} of one input"
    return None


def _mean(node: ir.Node) -> Reason:
    return "MNN fails to run Mean of two inputs" if len(node.inputs) == 2 else _one_input(node)


_register("Mean", _mean)
for _op in ("Max", "Min", "Sum"):
    _register(_op, _one_input)


def _batch_norm(node: ir.Node) -> Reason:
    if any(v is not None and _const(v) is None for v in node.inputs[1:5]):
        return ("MNN's converter crashes on BatchNormalization with scale, bias, mean or "
                "variance computed at run time")
    return None


_register("BatchNormalization", _batch_norm)


def _gelu(node: ir.Node) -> Reason:
    if node.attributes.get_string("approximate", "none") == "none":
        return ("MNN computes the exact (erf) Gelu with an approximation (max abs error "
                "4.7e-4 on [-6, 6])")
    return None


def _erf(node: ir.Node) -> Reason:
    out = node.outputs[0]
    if any(u.node.op_type == "Add" for u in out.uses()):
        return ("MNN's converter fuses x * 0.5 * (1 + erf(x / sqrt(2))) into its approximate "
                "GELU kernel (max abs error 4.7e-4)")
    return None


_register("Gelu", _gelu)
_register("Erf", _erf)


# -- indices ----------------------------------------------------------------------------

def _select_last(node: ir.Node) -> Reason:
    if node.attributes.get_int("select_last_index", 0) == 1:
        return f"MNN's {node.op_type} ignores select_last_index (it returns the first index)"
    return None


_register("ArgMax", _select_last)
_register("ArgMin", _select_last)


def _negative(v: Optional[ir.Value]) -> bool:
    c = _const(v)
    return c is None or bool((c < 0).any())


def _gather_elements(node: ir.Node) -> Reason:
    if _negative(_input(node, 1)):
        return "MNN's GatherElements reads negative indices wrongly"
    return None


_register("GatherElements", _gather_elements)


def _scatter_reduction(node: ir.Node) -> Reason:
    red = node.attributes.get_string("reduction", "none")
    if red not in ("none", "max") or (red == "max" and node.op_type == "ScatterND"):
        return f"MNN ignores {node.op_type}'s reduction={red!r} (it overwrites)"
    return None


def _scatter_negative(node: ir.Node) -> Reason:
    if _negative(_input(node, 1)):
        return f"MNN's {node.op_type} writes negative indices to the wrong place"
    return None


_register("ScatterElements", first(_scatter_reduction, _scatter_negative))
_register("Scatter", _scatter_negative)
_register("ScatterND", _scatter_reduction)


def _onehot(node: ir.Node) -> Reason:
    return "MNN hangs on OneHot"


_register("OneHot", _onehot)


def _matmul(node: ir.Node) -> Reason:
    a, b = _rank(_input(node, 0)), _rank(_input(node, 1))
    if a == 1 and b == 1:
        return "MNN segfaults on MatMul of two vectors"
    if b == 1 and a is not None and a > 2:
        return "MNN fails to run MatMul of a batch of matrices by a vector"
    if a == 1 or b == 1:
        return "MNN aborts (SIGABRT) on a MatMul with a 1-D operand"
    return None


_register("MatMul", _matmul)


def _gemm(node: ir.Node) -> Reason:
    if node.attributes.get_int("transA", 0) == 1:
        return "MNN ignores Gemm's transA when B is a constant"
    return None


_register("Gemm", _gemm)


# -- shape ------------------------------------------------------------------------------

def _split(node: ir.Node) -> Reason:
    from converters.mnn.rewrite_ops import _split_sizes

    sizes = _split_sizes(node)
    if sizes is not None:
        uneven = len(set(sizes)) > 1
    else:   # unknown sizes: asked for explicitly, or num_outputs of a dim that may not divide
        uneven = _input(node, 1) is not None or node.attributes.get("split") is not None \
            or node.attributes.get("num_outputs") is not None
    return "MNN splits into equal parts whatever the sizes asked" if uneven else None


_register("Split", _split)


def _space_to_depth(node: ir.Node) -> Reason:
    if node.attributes.get_string("mode", "DCR") == "CRD":
        return "MNN's SpaceToDepth ignores mode='CRD'"
    return None


_register("SpaceToDepth", _space_to_depth)
_register("Size", _always("MNN returns Size's rank-0 result with shape [1]"))


def _pad(node: ir.Node) -> Reason:
    if _input(node, 3) is not None:
        return "MNN fails to run Pad with an axes input"
    return None


_register("Pad", _pad)


def _reverse_sequence(node: ir.Node) -> Reason:
    lens = _const(_input(node, 1))
    if lens is None or (lens == 0).any():
        return "MNN fails to run ReverseSequence with a sequence length of 0"
    return None


_register("ReverseSequence", _reverse_sequence)
def _unique(node: ir.Node) -> Reason:
    if node.attributes.get("axis") is not None or not node.attributes.get_int("sorted", 1):
        return "MNN's Unique flattens its input and sorts (it ignores axis and sorted=0)"
    return None


def _det(node: ir.Node) -> Reason:
    return "MNN's Det gets the sign wrong when its elimination swaps rows (det_2d: 2, not -2)"


_register("Unique", _unique)
_register("Det", _det)
_register("DynamicQuantizeLinear", _always("MNN's DynamicQuantizeLinear rounds differently "
                                           "from ONNX (up to 10 of 12 values off by one)"))


# -- conv and pools ---------------------------------------------------------------------

def _conv_transpose(node: ir.Node) -> Reason:
    r = _rank(_input(node, 0))
    if r == 3:
        return "MNN's 1-D ConvTranspose returns a rank-4 result"
    if r == 5:
        return "MNN fails to run a 3-D ConvTranspose"
    return None


_register("ConvTranspose", _conv_transpose)


def _pool_dilations(node: ir.Node) -> Reason:
    if any(d != 1 for d in _ints(node, "dilations")):
        return f"MNN's runtime crashes (SIGFPE) or is wrong on a dilated {node.op_type}"
    return None


def _pool_indices(node: ir.Node) -> Reason:
    if len(node.outputs) > 1 and node.outputs[1] is not None and (
            node.outputs[1].uses() or node.outputs[1].is_graph_output()):
        return "MNN's MaxPool has no Indices output"
    return None


def _pool_ceil(node: ir.Node) -> Reason:
    """MNN sizes a ceil_mode pool as ceil((L + pads - k) / s) + 1; ONNX drops a last window
    that would start in the end padding. That can only happen where s > k - pad_end."""
    if node.attributes.get_int("ceil_mode", 0) != 1:
        return None
    k = _ints(node, "kernel_shape")
    nd = len(k)
    s = _ints(node, "strides") or [1] * nd
    d = _ints(node, "dilations") or [1] * nd
    pads = _ints(node, "pads") or [0] * 2 * nd
    x, y = _input(node, 0), node.outputs[0]
    for i in range(nd):
        eff = (k[i] - 1) * d[i] + 1
        if s[i] <= eff - pads[nd + i]:
            continue
        length = x.shape[2 + i] if x is not None and x.shape is not None else None
        out = y.shape[2 + i] if y.shape is not None else None
        if not (isinstance(length, int) and isinstance(out, int)) or \
                -(-(length + pads[i] + pads[nd + i] - eff) // s[i]) + 1 != out:
            return (f"MNN's ceil_mode {node.op_type} keeps a last window that starts in the "
                    "end padding (ONNX drops it)")
    return None


def _pool_auto_pad(node: ir.Node) -> Reason:
    if node.attributes.get_string("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        return f"MNN fails to run {node.op_type} with auto_pad SAME"
    return None


_register("MaxPool", first(_pool_dilations, _pool_indices, _pool_auto_pad, _pool_ceil))
_register("AveragePool", first(_pool_dilations, _pool_auto_pad, _pool_ceil))
_register("LpPool", _always("MNN's runtime crashes (SIGFPE) on LpPool"))


def _max_unpool(node: ir.Node) -> Reason:
    if _input(node, 2) is not None:
        return "MNN ignores MaxUnpool's output_shape"
    return None


_register("MaxUnpool", _max_unpool)


# -- normalization, losses --------------------------------------------------------------

def _lp_norm(node: ir.Node) -> Reason:
    r = _rank(_input(node, 0))
    axis = node.attributes.get_int("axis", -1)
    if r is None or axis % r != r - 1:
        return "MNN's LpNormalization is wrong off the last axis"
    return None


_register("LpNormalization", _lp_norm)


def _ignore_index(node: ir.Node) -> Reason:
    if node.attributes.get("ignore_index") is not None and _input(node, 2) is None:
        return f"MNN's {node.op_type} ignores ignore_index when no weight is given"
    return None


def _log_prob(node: ir.Node) -> Reason:
    if len(node.outputs) > 1 and node.outputs[1] is not None:
        return "MNN's SoftmaxCrossEntropyLoss has no log_prob output"
    return None


_register("NegativeLogLikelihoodLoss", _ignore_index)
_register("SoftmaxCrossEntropyLoss", first(_log_prob, _ignore_index))


# -- recurrent --------------------------------------------------------------------------

def _rnn(node: ir.Node) -> Reason:
    if node.op_type == "LSTM" and _input(node, 7) is not None:
        return "MNN's converter does not take LSTM peepholes (input P)"
    direction = node.attributes.get_string("direction", "forward")
    if direction == "reverse":
        return f"MNN runs a reverse {node.op_type} forward"
    if direction == "bidirectional" and node.op_type == "GRU" and any(
            v is not None and _const(v) is None for v in node.inputs[1:3]):
        return "MNN's bidirectional GRU with weights computed at run time is wrong"
    return None


for _op in ("LSTM", "GRU", "RNN"):
    _register(_op, _rnn)


# -- resize -----------------------------------------------------------------------------

def _align_corners_scales(node: ir.Node, coord: str, mode: str) -> Reason:
    """ONNX maps align_corners coordinates by (in - 1) / (in * scale - 1) when scales are
    given: unlike MNN (and ONNX Runtime), which divide by the rounded output size."""
    scales = _const(_input(node, 2))
    x = _input(node, 0)
    if coord != "align_corners" or mode == "nearest":
        return None
    if _input(node, 2) is not None and scales is None and _input(node, 3) is None:
        return ("align_corners Resize by scales computed at run time (ONNX maps by "
                "(in - 1) / (in * scale - 1), MNN by the rounded output size)")
    if scales is None or not scales.size or x is None or x.shape is None:
        return None
    for d, sc in zip(x.shape, scales.reshape(-1)):
        if sc != 1 and (not isinstance(d, int) or abs(d * sc - round(d * sc)) > 1e-6):
            return ("align_corners Resize by a scale whose output size is not a whole number "
                    "(ONNX maps by (in - 1) / (in * scale - 1), MNN by the rounded size)")
    return None


def _resize(node: ir.Node) -> Reason:
    a = node.attributes
    mode = a.get_string("mode", "nearest")
    coord = a.get_string("coordinate_transformation_mode", "half_pixel")
    if coord == "tf_crop_and_resize":
        return "MNN's Resize has no tf_crop_and_resize"
    if coord == "half_pixel_symmetric":
        return "MNN's Resize has no half_pixel_symmetric (computed as half_pixel)"
    if a.get_int("antialias", 0):
        return "MNN's Resize ignores antialias"
    if mode == "nearest" and a.get_string("nearest_mode", "round_prefer_floor") in (
            "ceil", "round_prefer_ceil"):
        return f"MNN's nearest Resize ignores nearest_mode={a.get_string('nearest_mode')!r}"
    if a.get_string("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "MNN's Resize ignores keep_aspect_ratio_policy"
    if a.get("axes") is not None:
        return "MNN's Resize ignores the axes attribute"
    why = _align_corners_scales(node, coord, mode)
    if why:
        return why
    if mode == "cubic":
        from converters.mnn.support import _cubic_resize
        return _cubic_resize(node)
    return None


_register("Resize", _resize)


def _upsample(node: ir.Node) -> Reason:
    if _input(node, 1) is not None and _const(_input(node, 1)) is None:
        return "MNN fails to run Upsample with scales computed at run time"
    return None


_register("Upsample", _upsample)


def _grid_sample(node: ir.Node) -> Reason:
    mode = node.attributes.get_string("mode", "linear")
    pad = node.attributes.get_string("padding_mode", "zeros")
    if mode not in ("linear", "bilinear"):
        return f"MNN's GridSample is wrong with mode={mode!r} (bilinear is right)"
    if pad == "reflection":
        return "MNN's GridSample is wrong with padding_mode='reflection'"
    return None


_register("GridSample", _grid_sample)


# -- control flow -----------------------------------------------------------------------

def _loop(node: ir.Node) -> Reason:
    """A Loop with scan outputs that may run zero times: MNN's runtime segfaults then."""
    body = node.attributes["body"].value
    n_scans = len(body.outputs) - 1 - (len(node.inputs) - 2)
    if n_scans <= 0:
        return None
    m = _const(_input(node, 0))
    cond = _input(node, 1)
    c = _const(cond) if cond is not None else np.array(True)
    if m is not None and int(m.reshape(-1)[0]) >= 1 and c is not None and bool(c.reshape(-1)[0]):
        return None
    return ("MNN's runtime segfaults when a Loop with scan outputs runs zero times (its trip "
            "count or condition is computed at run time)")


_register("Loop", _loop)
