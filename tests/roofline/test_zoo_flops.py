"""The analysis against published figures: torchvision's architectures at
224x224 with 1000 classes (ResNet-18 1.814 GMACs, MobileNetV2 0.301 GMACs, the
figures of torchvision's model cards and of ptflops/fvcore), and per-layer
values a hand calculation gives."""
from __future__ import annotations

import pytest

from converters.analysis import analyze

PUBLISHED_GMACS = {"resnet18": 1.814, "mobilenet_v2": 0.3008}
PUBLISHED_PARAMS = {"resnet18": 11_689_512, "mobilenet_v2": 3_504_872}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_total_macs_match_published_figures_at_224(zoo_onnx, name):
    a = analyze(zoo_onnx(name, 224))
    assert a.total_macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.02)
    assert a.uncounted_ops == {}
    # FLOPs are 2 per MAC plus biases, activations, pooling and adds: a few percent more
    assert 2 * a.total_macs < a.total_flops < 2.1 * a.total_macs
    # BN folded into the convs by the exporter: the weights are torchvision's parameters
    # less the BN vectors (4 per channel, 2 of which become conv biases)
    params = sum(t.elements for t in a.weights)
    assert params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01)


def test_resnet18_layers_by_hand(zoo_onnx):
    a = analyze(zoo_onnx("resnet18", 224))
    stem = a.layers[0]
    assert stem.op_type == "Conv+Relu"
    # 7x7 stride-2 conv 3->64 at 112x112 output
    assert stem.macs == 64 * 112 * 112 * 3 * 49
    # input 3x224x224, weights 64x3x7x7 + bias 64, output 64x112x112 (relu fused)
    assert stem.bytes("fp32") == 4 * (3 * 224 * 224 + 64 * 147 + 64 + 64 * 112 * 112)
    fc = a.layers[-1]
    assert (fc.op_type, fc.macs, fc.flops) == ("Gemm", 512 * 1000, 2 * 512 * 1000 + 1000)
    assert fc.weight_bytes("int8") == 512 * 1000 + 4 * 1000


def test_mobilenet_v2_depthwise_layer_by_hand(zoo_onnx):
    a = analyze(zoo_onnx("mobilenet_v2", 224))
    dw = a.layers[1]            # features.1: depthwise 3x3 over 32 channels at 112x112
    assert dw.op_type == "Conv+Clip"
    assert dw.macs == 32 * 112 * 112 * 9
    assert dw.flops == 2 * dw.macs + 32 * 112 * 112 + 2 * 32 * 112 * 112   # bias + ReLU6
