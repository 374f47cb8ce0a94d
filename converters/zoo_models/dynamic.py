"""A small CNN exported with a dynamic batch dimension (``dynamic_axes``), so the
front-end, the passes and the backends see a symbolic dim. Its example batch is 2,
not 1, so nothing in the trace can quietly specialize the batch to 1."""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import _register
from converters.zoo_models.layers import ConvNormAct


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvNormAct(3, 16, 3, 2), ConvNormAct(16, 32, 3, 2),
            ConvNormAct(32, 32, 3, 1, groups=32, act=nn.ReLU6), ConvNormAct(32, 64, 1),
            nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


@_register("dynamic_batch_cnn", "image", native_resolution=32, default_classes=10,
           description="small CNN with a dynamic batch dimension")
def _dynamic_batch_cnn(res, classes, gen):
    x = torch.randn(2, 3, res, res, generator=gen)
    dyn = {"input": {0: "batch"}, "logits": {0: "batch"}}
    return SmallCNN(classes), (x,), ["input"], ["logits"], dyn
