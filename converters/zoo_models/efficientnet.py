"""EfficientNet-B0, as torchvision defines it: MBConv blocks with SiLU and
squeeze-excitation (squeeze width = block input channels / 4), BN eps 1e-3.
Stochastic depth is the identity in eval mode and is left out."""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import _classifier, _register
from converters.zoo_models.layers import ConvNormAct, SqueezeExcitation, make_divisible


class MBConv(nn.Module):
    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = make_divisible(cin * expand)
        layers = []
        if hidden != cin:
            layers.append(ConvNormAct(cin, hidden, 1, act=nn.SiLU, bn_eps=1e-3))
        layers += [ConvNormAct(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU,
                               bn_eps=1e-3),
                   SqueezeExcitation(hidden, max(1, cin // 4), act=nn.SiLU, gate=nn.Sigmoid),
                   ConvNormAct(hidden, cout, 1, act=None, bn_eps=1e-3)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res_connect else self.block(x)


class EfficientNetB0(nn.Module):
    # expand, kernel, stride, in, out, layers
    SETTINGS = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
                (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
                (6, 3, 1, 192, 320, 1)]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers = [ConvNormAct(3, 32, 3, 2, act=nn.SiLU, bn_eps=1e-3)]
        for expand, k, s, cin, cout, n in self.SETTINGS:
            stage = [MBConv(expand, k, s if i == 0 else 1, cin if i == 0 else cout, cout)
                     for i in range(n)]
            layers.append(nn.Sequential(*stage))
        layers.append(ConvNormAct(320, 1280, 1, act=nn.SiLU, bn_eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2, inplace=True), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@_register("efficientnet_b0", "image",
           description="torchvision EfficientNet-B0 (MBConv, SiLU, SE)")
def _efficientnet_b0(res, classes, gen):
    return _classifier(EfficientNetB0(classes), res, gen)
