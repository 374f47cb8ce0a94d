"""The model zoo: the networks every converter is tested and benchmarked on.

Defined here in code, with seeded weights, because torchvision cannot be
installed beside torch 2.13 and tests must not download anything. The image
classifiers follow torchvision's definitions layer for layer (same channels,
strides, kernel sizes, biases, SE placement), so at their native resolution
(224) with 1000 classes their FLOPs match the published figures (ResNet-18
about 1.82 GMACs, MobileNetV2 about 0.30 GMACs) and the roofline tools can check
themselves against them.

Weights are seeded (``seed``) and every BatchNorm gets non-trivial statistics:
random affine parameters, then running mean/variance measured on a seeded
random batch and perturbed, so BN folding changes real numbers and the network
stays well scaled (outputs neither vanish nor explode at random init).

``resolution=None`` means the model's native size (224 for the ImageNet
classifiers); tests pass ``TEST_RESOLUTION`` to stay fast.

    model = build("resnet18", resolution=64, seed=0)
    model.module(*model.example_inputs)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

TEST_RESOLUTION = 64          # small enough for fast tests, large enough to keep every stride
NATIVE_RESOLUTION = 224
SEQUENCE_LENGTH = 16          # default "resolution" of the sequence models


@dataclass
class ZooModel:
    """A built zoo network and what exporting it needs."""

    name: str
    module: "object"                 # torch.nn.Module, in eval mode
    example_inputs: Tuple            # tuple of torch tensors
    input_names: List[str]
    output_names: List[str]
    dynamic_axes: Optional[Dict[str, Dict[int, str]]]
    kind: str                        # "image" | "segmentation" | "sequence"
    num_classes: Optional[int] = None
    resolution: Optional[int] = None


@dataclass(frozen=True)
class _Entry:
    factory: Callable
    kind: str
    native_resolution: int
    default_classes: Optional[int]
    description: str


_REGISTRY: Dict[str, _Entry] = {}


def _register(name: str, kind: str, native_resolution: int = NATIVE_RESOLUTION,
              default_classes: Optional[int] = 1000, description: str = ""):
    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"zoo model {name!r} registered twice")
        _REGISTRY[name] = _Entry(fn, kind, native_resolution, default_classes, description)
        return fn
    return deco


def names() -> List[str]:
    """Every zoo model name, in registration order."""
    _ensure_registered()
    return list(_REGISTRY)


def describe(name: str) -> str:
    """One line on what the model is and what it exercises."""
    _ensure_registered()
    return _entry(name).description


def kind(name: str) -> str:
    """"image", "segmentation" or "sequence"."""
    _ensure_registered()
    return _entry(name).kind


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        from converters.errors import ConversionError
        raise ConversionError(f"unknown zoo model {name!r}; zoo models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build(name: str, *, resolution: Optional[int] = None, seed: int = 0,
          num_classes: Optional[int] = None) -> ZooModel:
    """Build zoo model ``name`` with seeded weights, in eval mode.

    Args:
        resolution: image side (image models) or sequence length (sequence models);
            default the model's native size (224 for the ImageNet classifiers).
        seed: seeds the weights, the BatchNorm statistics and the example inputs.
        num_classes: classifier width (default 1000 for the ImageNet classifiers).
    """
    import torch

    _ensure_registered()
    entry = _entry(name)
    res = int(resolution or entry.native_resolution)
    classes = num_classes if num_classes is not None else entry.default_classes
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module, example, in_names, out_names, dyn = entry.factory(res, classes, gen)
        _init_weights(module, gen)
        _calibrate_batchnorm(module, example, gen)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return ZooModel(name=name, module=module, example_inputs=tuple(example),
                    input_names=list(in_names), output_names=list(out_names),
                    dynamic_axes=dyn, kind=entry.kind, num_classes=classes, resolution=res)


# -- weights ------------------------------------------------------------------------

def _init_weights(module, gen) -> None:
    """torchvision's init (kaiming fan-out convs, small linears) plus seeded BN affines."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.05, generator=gen)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.05, generator=gen)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)):
                if m.weight is not None:
                    m.weight.uniform_(0.6, 1.4, generator=gen)
                    m.bias.normal_(0.0, 0.1, generator=gen)


def _calibrate_batchnorm(module, example, gen) -> None:
    """Running stats from a seeded batch (so activations stay well scaled), then perturbed
    (so they are not exactly the batch's and folding has something to fold)."""
    import torch
    from torch import nn

    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None                     # cumulative average over the calibration batch
    batch = tuple(torch.randn((4,) + tuple(t.shape[1:]), generator=gen) for t in example)
    module.train()
    with torch.no_grad():
        module(*batch)
    module.eval()
    with torch.no_grad():
        for bn in bns:
            n = bn.num_features
            bn.running_mean.add_(0.05 * torch.randn(n, generator=gen))
            bn.running_var.mul_(torch.empty(n).uniform_(0.8, 1.25, generator=gen))
            bn.momentum = 0.1


def _image_input(res: int, gen, batch: int = 1):
    import torch
    return (torch.randn(batch, 3, res, res, generator=gen),)


def _classifier(module, res, gen, dyn=None):
    return module, _image_input(res, gen), ["input"], ["logits"], dyn


def _ensure_registered() -> None:
    """Import the architecture modules, each of which registers its models once."""
    from converters import zoo_models  # noqa: F401  (registration side effect is the point)
