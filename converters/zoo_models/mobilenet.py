"""MobileNetV2 and MobileNetV3-small, as torchvision defines them (width 1.0).

V2: inverted residuals with ReLU6 and linear bottlenecks. V3-small: hard-swish,
squeeze-excitation with a hard-sigmoid gate, 5x5 depthwise convs.
"""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import _classifier, _register
from converters.zoo_models.layers import ConvNormAct, SqueezeExcitation, make_divisible


class InvertedResidualV2(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(inp, hidden, 1, act=nn.ReLU6))
        layers += [ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]  # expand t, channels c, repeats n, stride s

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        cin, last = 32, 1280
        features = [ConvNormAct(3, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in self.SETTINGS:
            cout = make_divisible(c)
            for i in range(n):
                features.append(InvertedResidualV2(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvNormAct(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class InvertedResidualV3(nn.Module):
    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, use_se: bool,
                 act: type, stride: int) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        if expanded != cin:
            layers.append(ConvNormAct(cin, expanded, 1, act=act, bn_eps=1e-3))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, act=act,
                                  bn_eps=1e-3))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8),
                                            gate=nn.Hardsigmoid))
        layers.append(ConvNormAct(expanded, cout, 1, act=None, bn_eps=1e-3))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res_connect else self.block(x)


class MobileNetV3Small(nn.Module):
    RE, HS = nn.ReLU, nn.Hardswish
    # in, kernel, expanded, out, SE, activation, stride
    SETTINGS = [(16, 3, 16, 16, True, RE, 2), (16, 3, 72, 24, False, RE, 2),
                (24, 3, 88, 24, False, RE, 1), (24, 5, 96, 40, True, HS, 2),
                (40, 5, 240, 40, True, HS, 1), (40, 5, 240, 40, True, HS, 1),
                (40, 5, 120, 48, True, HS, 1), (48, 5, 144, 48, True, HS, 1),
                (48, 5, 288, 96, True, HS, 2), (96, 5, 576, 96, True, HS, 1),
                (96, 5, 576, 96, True, HS, 1)]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers = [ConvNormAct(3, 16, 3, 2, act=nn.Hardswish, bn_eps=1e-3)]
        for cin, k, exp, cout, se, act, s in self.SETTINGS:
            layers.append(InvertedResidualV3(cin, k, exp, cout, se, act, s))
        layers.append(ConvNormAct(96, 576, 1, act=nn.Hardswish, bn_eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2, inplace=True), nn.Linear(1024, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@_register("mobilenet_v2", "image", description="torchvision MobileNetV2 (ReLU6, inverted residuals)")
def _mobilenet_v2(res, classes, gen):
    return _classifier(MobileNetV2(classes), res, gen)


@_register("mobilenet_v3_small", "image",
           description="torchvision MobileNetV3-small (hard-swish, SE with hard-sigmoid)")
def _mobilenet_v3_small(res, classes, gen):
    return _classifier(MobileNetV3Small(classes), res, gen)
