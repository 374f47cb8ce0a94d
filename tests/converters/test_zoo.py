"""The zoo matches torchvision's architectures and is seeded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converters import zoo

# torchvision's parameter counts at 1000 classes (from its model cards)
TORCHVISION_PARAMS = {
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_small": 2_542_856,
    "resnet18": 11_689_512,
    "efficientnet_b0": 5_288_548,
    "shufflenet_v2": 2_278_604,
    "squeezenet": 1_235_496,
}


def _macs(model: zoo.ZooModel) -> int:
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() * mod.in_channels // mod.groups * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.module.modules()]
    with torch.no_grad():
        model.module(*model.example_inputs)
    for h in handles:
        h.remove()
    return total[0]


def test_zoo_has_every_required_family():
    assert set(zoo.names()) >= {"mobilenet_v2", "mobilenet_v3_small", "resnet18",
                                "efficientnet_b0", "shufflenet_v2", "squeezenet", "unet",
                                "transformer_encoder", "lstm", "gru", "dynamic_batch_cnn"}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_count_matches_torchvision(zoo_models, name):
    n = sum(p.numel() for p in zoo_models[name].module.parameters())
    assert n == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name,gmacs", [("resnet18", 1.814), ("mobilenet_v2", 0.3008)])
def test_macs_at_native_resolution_match_published(name, gmacs):
    model = zoo.build(name)
    assert tuple(model.example_inputs[0].shape) == (1, 3, 224, 224)
    assert _macs(model) / 1e9 == pytest.approx(gmacs, rel=1e-3)


def test_weights_are_seeded(zoo_models):
    a = zoo_models["mobilenet_v3_small"].module.state_dict()
    b = zoo.build("mobilenet_v3_small", resolution=64, seed=0).module.state_dict()
    c = zoo.build("mobilenet_v3_small", resolution=64, seed=1).module.state_dict()
    key = "features.1.block.0.1.running_var"
    assert torch.equal(a[key], b[key])
    assert not torch.equal(a[key], c[key])


def test_batchnorm_statistics_are_not_trivial(zoo_models):
    bns = [m for m in zoo_models["resnet18"].module.modules()
           if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 20
    for bn in bns:
        assert float(bn.running_mean.abs().max()) > 1e-3
        assert float((bn.running_var - 1).abs().max()) > 1e-2
        assert float((bn.weight - 1).abs().max()) > 1e-2


def test_outputs_are_well_scaled_and_not_degenerate(zoo_models):
    for name in zoo.names():
        m = zoo_models[name]
        with torch.no_grad():
            outs = m.module(*m.example_inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        assert len(outs) == len(m.output_names), name
        for o in outs:
            std = float(o.std())
            assert np.isfinite(std) and 1e-2 < std < 1e3, (name, std)


def test_dynamic_batch_model_declares_batch_axis(zoo_models):
    m = zoo_models["dynamic_batch_cnn"]
    assert m.dynamic_axes == {"input": {0: "batch"}, "logits": {0: "batch"}}
    assert m.example_inputs[0].shape[0] == 2


def test_unknown_name_is_a_clear_error():
    from converters.errors import ConversionError
    with pytest.raises(ConversionError, match="unknown zoo model 'resnet99'.*resnet18"):
        zoo.build("resnet99")
