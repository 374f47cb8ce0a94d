"""Fixtures of the sparsity tests: small torch models (seeded) and zoo exports made once."""
from __future__ import annotations

import pytest


def mlp(seed: int = 0):
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model, (torch.randn(2, 64, generator=gen),)


def convnet(seed: int = 0):
    """stem 3x3 s2, pointwise, depthwise, pointwise, pooled: the layer kinds MNN cares about."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.ReLU(),
        nn.Conv2d(64, 128, 1), nn.ReLU(),
        nn.Conv2d(128, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model, (torch.randn(1, 3, 32, 32, generator=gen),)


class _Sources:
    """Zoo models at 32x32, each exported once (SourceModel) for the whole session."""

    def __init__(self) -> None:
        self._done = {}

    def __getitem__(self, name: str):
        if name not in self._done:
            from converters import zoo
            from converters.frontends import load_source

            zm = zoo.build(name, resolution=32, seed=0, num_classes=10)
            self._done[name] = (zm, load_source(zm))
        return self._done[name]


@pytest.fixture(scope="session")
def zoo_sources():
    return _Sources()
