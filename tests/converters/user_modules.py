"""Small PyTorch modules a user might bring, for op-coverage sweeps of both targets.

Each case is a module and its example inputs (seeded), and what each target is
expected to do with it: convert and match (``None``), or refuse with an error
containing the given text. ``test_user_modules.py`` converts a subset on every run;
the whole list is a sweep to run by hand after changing lowerings or passes:

    python -m tests.converters.user_modules [case ...]     # one line per case and target

It prints, per case and target, the worst output cosine and the TRANSPOSE count
(TFLite), or the error; a line that differs from the expectation is marked.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple


@dataclass
class Case:
    name: str
    build: Callable[[], Tuple[object, tuple]]        # () -> (module, example inputs)
    refused: Dict[str, str] = field(default_factory=dict)   # target -> text in the error


def _modules():
    """The module classes (torch imported only when a case is built)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Conv1dNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.bn, s.l = nn.Conv1d(8, 16, 5, padding=2), nn.BatchNorm1d(16), nn.Linear(16, 4)

        def forward(s, x):
            return s.l(F.relu(s.bn(s.c(x))).mean(-1))

    class KWS(nn.Module):
        """Keyword spotting: MFCC [N, 40, T] -> depthwise-separable Conv1d stack -> logits."""
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv1d(40, 64, 3, padding=1)
            s.blocks = nn.Sequential(*[nn.Sequential(
                nn.Conv1d(64, 64, 3, padding=1, groups=64), nn.BatchNorm1d(64), nn.ReLU(),
                nn.Conv1d(64, 64, 1), nn.BatchNorm1d(64), nn.ReLU()) for _ in range(3)])
            s.head = nn.Linear(64, 12)

        def forward(s, x):
            return s.head(s.blocks(F.relu(s.stem(x))).mean(-1))

    class ConvT1d(nn.Module):
        def __init__(s):
            super().__init__()
            s.t = nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)
            s.p, s.m = nn.AvgPool1d(2), nn.MaxPool1d(3, 1, 1)

        def forward(s, x):
            return s.m(s.p(torch.tanh(s.t(x))))

    class GroupNormNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.g = nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16)

        def forward(s, x):
            return F.gelu(s.g(s.c(x)))

    class GN1d(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.g = nn.Conv1d(8, 16, 3, padding=1), nn.GroupNorm(4, 16)
            s.i = nn.InstanceNorm1d(16, affine=True)

        def forward(s, x):
            return s.i(F.silu(s.g(s.c(x))))

    class InstNorm(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.n = nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True)

        def forward(s, x):
            return s.n(s.c(x))

    class LayerNorm2(nn.Module):
        def __init__(s):
            super().__init__()
            s.n, s.c = nn.LayerNorm([8, 8]), nn.Conv2d(4, 4, 3, padding=1)

        def forward(s, x):
            return s.c(s.n(x))

    class LayerNormNHWC(nn.Module):
        def __init__(s):
            super().__init__()
            s.n = nn.LayerNorm(16)

        def forward(s, x):
            return s.n(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    class PixelShuffle(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.p = nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)

        def forward(s, x):
            return s.p(s.c(x))

    class PixelUnshuffle(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.d = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(16, 8, 1)

        def forward(s, x):
            return s.d(F.pixel_unshuffle(s.c(x), 2))

    class Einsum(nn.Module):
        def __init__(s):
            super().__init__()
            s.w = nn.Parameter(torch.randn(16, 8))

        def forward(s, x):
            return torch.einsum("bti,oi->bto", x, s.w)

    class EinsumAttention(nn.Module):
        def forward(s, q, k):
            return torch.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)

    class MishSoftplusElu(nn.Module):
        def forward(s, x):
            return F.mish(x) + F.softplus(x) + F.elu(x)

    class SoftplusSeluCeluMish(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c, s.d = nn.Softplus(beta=2), nn.SELU(), nn.CELU(0.5), nn.Mish()

        def forward(s, x):
            return s.a(x) + s.b(x) + s.c(x) + s.d(x * 30)

    class GeluTanhLeakyElu(nn.Module):
        def forward(s, x):
            return F.gelu(x, approximate="tanh") + F.leaky_relu(x, 0.2) + F.elu(x, 0.5)

    class Activations(nn.Module):
        def __init__(s):
            super().__init__()
            s.a, s.b, s.c, s.d = nn.Hardtanh(-2, 2), nn.ReLU6(), nn.SiLU(), nn.Hardswish()

        def forward(s, x):
            return s.a(x) + s.b(x) + s.c(x) + s.d(x)

    class PReLUNet(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.p = nn.Conv2d(3, 8, 3), nn.PReLU(8)

        def forward(s, x):
            return s.p(s.c(x))

    class Dilated(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(3, 8, 3, dilation=2, padding=2)

        def forward(s, x):
            return F.leaky_relu(s.c(x), 0.1)

    class DepthwiseMultiplier(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(4, 8, 3, groups=4, padding=1)

        def forward(s, x):
            return s.c(x)

    class ConvTranspose(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.ConvTranspose2d(3, 6, 4, stride=2, padding=1)

        def forward(s, x):
            return torch.tanh(s.c(x))

    class Upsample3(nn.Module):
        def __init__(s):
            super().__init__()
            s.u = nn.Upsample(scale_factor=3, mode="nearest")
            s.b = nn.Upsample(scale_factor=3, mode="bilinear")

        def forward(s, x):
            return s.u(x) + s.b(x)

    class UpBilinearAlignCorners(nn.Module):
        def forward(s, x):
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    class UpNearestSize(nn.Module):
        def forward(s, x):
            return F.interpolate(x, size=(40, 24), mode="nearest")

    class AdaptiveAvg7(nn.Module):
        def forward(s, x):
            return F.adaptive_avg_pool2d(x, 7)

    class AvgPoolCeil(nn.Module):
        def forward(s, x):
            return F.avg_pool2d(x, 3, 2, ceil_mode=True) + 0

    class MaxPoolPad(nn.Module):
        def forward(s, x):
            return F.max_pool2d(x, 3, 2, padding=1)

    class GridSample(nn.Module):
        def forward(s, x, grid):
            return F.grid_sample(x, grid, align_corners=False)

    class CumSum(nn.Module):
        def forward(s, x):
            return torch.cumsum(x, dim=1)

    class TopK(nn.Module):
        def forward(s, x):
            v, i = torch.topk(x, 3, dim=-1)
            return v, i

    class ArgMaxOutput(nn.Module):
        def __init__(s):
            super().__init__()
            s.l = nn.Linear(16, 10)

        def forward(s, x):
            return s.l(x).argmax(-1)

    class MaskedFillWhere(nn.Module):
        def forward(s, x):
            return x.masked_fill(x > 0.5, -1.0) + torch.where(x < -0.5, x * 2,
                                                               torch.zeros_like(x))

    class L2Normalize(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(3, 8, 1)

        def forward(s, x):
            return F.normalize(s.c(x), dim=1)

    class StridedSlice(nn.Module):
        def forward(s, x):
            return x[:, :, ::2] * 2 + x[:, :, 1::2]

    class Flip(nn.Module):
        def forward(s, x):
            return torch.flip(x, dims=[3]) + torch.flip(x, dims=[1, 2])

    class Roll(nn.Module):
        def forward(s, x):
            return torch.roll(x, shifts=2, dims=3) - torch.roll(x, shifts=(1, -1), dims=(2, 3))

    class RepeatTile(nn.Module):
        def forward(s, x):
            return x.repeat(1, 2, 1, 3) + 1

    class TokenEmbedding(nn.Module):
        def __init__(s):
            super().__init__()
            s.e, s.pos = nn.Embedding(100, 32), nn.Parameter(torch.randn(1, 12, 32))
            s.n, s.l = nn.LayerNorm(32), nn.Linear(32, 8)

        def forward(s, ids):
            return s.l(s.n(s.e(ids) + s.pos))

    class TwoInTwoOut(nn.Module):
        def __init__(s):
            super().__init__()
            s.c, s.l = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(5, 6)

        def forward(s, img, vec):
            return torch.relu(s.c(img)), s.l(vec) * img.mean()

    class MultiheadAttention(nn.Module):
        def __init__(s):
            super().__init__()
            s.m = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(s, x):
            return s.m(x, x, x, need_weights=False)[0]

    class SumMaxStd(nn.Module):
        def forward(s, x):
            return (x.sum(dim=(2, 3), keepdim=True) * x.amax(dim=1, keepdim=True)
                    + x.std(dim=1, keepdim=True))

    class SplitMaxExpand(nn.Module):
        def forward(s, x):
            a, b = torch.chunk(x, 2, dim=1)
            return torch.cat([b * torch.sigmoid(a),
                              a.max(dim=1, keepdim=True).values.expand_as(a)], 1)

    class ReflectPad(nn.Module):
        def forward(s, x):
            return F.pad(x, (1, 2, 0, 3), mode="reflect")

    class FlattenLinear(nn.Module):
        def __init__(s):
            super().__init__()
            s.l = nn.Linear(3 * 16 * 16, 10)

        def forward(s, x):
            return s.l(x.reshape(x.shape[0], -1))

    class BatchMatMul(nn.Module):
        def forward(s, x):
            return torch.matmul(x, x.transpose(1, 2))

    return {k: v for k, v in locals().items() if isinstance(v, type)}


def _case(name, cls, *shapes, refused=None, ints=None):
    def build():
        import torch
        torch.manual_seed(0)
        m = _modules()[cls]().eval()
        for mod in m.modules():                      # BatchNorm statistics that do something
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
        g = torch.Generator().manual_seed(1)
        inputs = tuple(torch.randint(0, ints, s, generator=g) if ints else
                       torch.randn(s, generator=g) for s in shapes)
        return m, inputs
    return Case(name, build, refused or {})


IMG = (1, 3, 16, 16)
CASES = [
    _case("conv1d", "Conv1dNet", (1, 8, 32)),
    _case("kws_conv1d_stack", "KWS", (1, 40, 49)),
    _case("convtranspose1d_pool1d", "ConvT1d", (1, 8, 10)),
    _case("groupnorm_gelu", "GroupNormNet", IMG),
    _case("groupnorm1d_instancenorm1d", "GN1d", (2, 8, 20)),
    _case("instancenorm", "InstNorm", IMG),
    _case("layernorm_2_axes", "LayerNorm2", (2, 4, 8, 8)),
    _case("layernorm_nhwc", "LayerNormNHWC", (1, 16, 8, 8)),
    _case("pixelshuffle", "PixelShuffle", IMG),
    _case("pixel_unshuffle", "PixelUnshuffle", IMG),
    _case("einsum_linear", "Einsum", (2, 5, 8)),
    _case("einsum_attention", "EinsumAttention", (1, 2, 5, 8), (1, 2, 6, 8)),
    _case("mish_softplus_elu", "MishSoftplusElu", IMG),
    _case("softplus_beta_selu_celu_mish", "SoftplusSeluCeluMish", IMG),
    _case("gelu_tanh_leaky_elu", "GeluTanhLeakyElu", IMG),
    _case("hardtanh_relu6_silu_hardswish", "Activations", IMG),
    _case("prelu", "PReLUNet", IMG),
    _case("dilated_leaky", "Dilated", IMG),
    _case("depthwise_multiplier2", "DepthwiseMultiplier", (1, 4, 16, 16)),
    _case("convtranspose", "ConvTranspose", IMG),
    _case("upsample_x3", "Upsample3", (1, 3, 5, 6)),
    _case("upsample_bilinear_align_corners", "UpBilinearAlignCorners", IMG),
    _case("upsample_nearest_size", "UpNearestSize", (1, 3, 20, 12)),
    _case("adaptive_avgpool_7_on_14", "AdaptiveAvg7", (1, 3, 14, 14)),
    _case("adaptive_avgpool_7_on_15", "AdaptiveAvg7", (1, 3, 15, 15)),
    _case("avgpool_ceil", "AvgPoolCeil", (1, 3, 15, 15)),
    _case("maxpool_pad", "MaxPoolPad", IMG),
    _case("grid_sample", "GridSample", (1, 3, 8, 8), (1, 6, 6, 2)),
    _case("cumsum", "CumSum", (2, 7, 5)),
    _case("topk", "TopK", (2, 10)),
    _case("argmax_output", "ArgMaxOutput", (3, 16)),
    _case("masked_fill_where", "MaskedFillWhere", (2, 3, 4, 4)),
    _case("l2_normalize", "L2Normalize", IMG),
    _case("strided_slice", "StridedSlice", (1, 3, 8, 5)),
    _case("flip", "Flip", (1, 3, 4, 5)),
    _case("roll", "Roll", (1, 3, 4, 6)),
    _case("repeat_tile", "RepeatTile", (1, 2, 3, 4)),
    _case("token_embedding_position", "TokenEmbedding", (2, 12), ints=100),
    _case("two_inputs_two_outputs", "TwoInTwoOut", IMG, (2, 5)),
    _case("multihead_attention", "MultiheadAttention", (1, 10, 32)),
    _case("sum_max_std_keepdim", "SumMaxStd", IMG),
    _case("split_max_expand", "SplitMaxExpand", (1, 4, 8, 8)),
    _case("reflect_pad", "ReflectPad", IMG),
    _case("flatten_linear", "FlattenLinear", IMG),
    _case("batch_matmul", "BatchMatMul", (2, 6, 5)),
]
BY_NAME = {c.name: c for c in CASES}


def convert_case(case: Case, out_dir, targets=("mnn", "tflite")):
    """``converters.convert`` on the case (errors returned in the report, not raised)."""
    from converters import convert

    module, inputs = case.build()
    return convert(module, targets=targets, example_inputs=inputs, out_dir=out_dir,
                   raise_on_error=False, load_check="structure")


def outcome(case: Case, target_report) -> Tuple[bool, str]:
    """(as expected?, one-line description) for one target of a converted case."""
    want = case.refused.get(target_report.target)
    if target_report.error:
        text = f"{target_report.error_type}: {target_report.error[:200]}"
        return bool(want) and want in target_report.error, text
    v = target_report.verification
    cos = min(o.cosine for o in v.outputs)
    t = target_report.details.get("transposes")
    text = f"cosine {cos:.7f}" + ("" if t is None else f", {t} TRANSPOSE")
    return want is None and v.passed, text + ("" if v.passed else " FAILED")


def main(argv: Optional[list] = None) -> int:
    import tempfile
    import warnings

    warnings.filterwarnings("ignore")
    names = (argv if argv is not None else sys.argv[1:]) or list(BY_NAME)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="edgert-sweep-") as tmp:
        for name in names:
            report = convert_case(BY_NAME[name], f"{tmp}/{name}")
            cells = []
            for t in report.targets:
                ok, text = outcome(BY_NAME[name], t)
                bad += not ok
                cells.append(f"{t.target}: {text}" + ("" if ok else "  <-- unexpected"))
            print(f"{name:32s} | " + " | ".join(cells), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
