"""PyTorch modules as the exporter really writes them (Conv1d stacks, GroupNorm's
Reshape/InstanceNormalization/Reshape, PixelShuffle's CRD DepthToSpace, Mish, Einsum,
F.normalize's ReduceL2, masked_fill's comparisons, non-uniform adaptive pooling's
GatherND, top-k, cumsum) through both targets: each converts and matches PyTorch
(cosine >= 0.99999), or is refused with its reason; TFLite keeps the layouts
channel-last (TRANSPOSE only at the I/O boundary)."""
from __future__ import annotations

import pytest

from tests.converters.user_modules import BY_NAME, convert_case, outcome

# case -> expected TFLite op counts (a subset of the file's op counts)
SUBSET = {
    "kws_conv1d_stack": {"TRANSPOSE": 1, "RESHAPE": 2, "CONV_2D": 4, "DEPTHWISE_CONV_2D": 3},
    "convtranspose1d_pool1d": {"TRANSPOSE": 2, "TRANSPOSE_CONV": 1},
    "groupnorm_gelu": {"TRANSPOSE": 2, "MEAN": 4},
    "groupnorm1d_instancenorm1d": {"TRANSPOSE": 2},
    "layernorm_2_axes": {"TRANSPOSE": 2},
    "pixelshuffle": {"TRANSPOSE": 2, "DEPTH_TO_SPACE": 1},
    "einsum_attention": {"BATCH_MATMUL": 1},
    "mish_softplus_elu": {},
    "masked_fill_where": {},
    "l2_normalize": {},
    "adaptive_avgpool_7_on_15": {"GATHER_ND": 1},
    "topk": {"TOPK_V2": 1},
    "cumsum": {"CUMSUM": 1},
    "grid_sample": {"GATHER": 4},         # TFLite: decomposed (run-time grid); MNN: native
}


@pytest.mark.parametrize("name", SUBSET)
def test_user_module_on_both_targets(name, tmp_path):
    case = BY_NAME[name]
    report = convert_case(case, tmp_path)
    for target in report.targets:
        ok, text = outcome(case, target)
        assert ok, f"{name} on {target.target}: {text}"
    tflite = report.target("tflite")
    for op, n in (SUBSET[name] or {}).items():
        assert tflite.op_counts.get(op, 0) == n, (op, tflite.op_counts)
    if name.startswith("einsum"):
        assert "Einsum" not in report.passes.ops_after


def test_sweep_cases_are_unique_and_buildable():
    assert len(BY_NAME) >= 40
    module, inputs = BY_NAME["token_embedding_position"].build()
    assert inputs[0].dtype.is_floating_point is False and inputs[0].max() < 100
