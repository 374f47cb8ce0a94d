"""ShuffleNetV2 x1.0, as torchvision defines it: channel split (chunk), branch
concat and channel shuffle (reshape-transpose-reshape)."""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import _classifier, _register


def channel_shuffle(x, groups: int):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


def _dw(c: int, stride: int) -> nn.Module:
    return nn.Conv2d(c, c, 3, stride, 1, bias=False, groups=c)


class ShuffleBlock(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                _dw(inp, stride), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else bf, bf, 1, bias=False), nn.BatchNorm2d(bf),
            nn.ReLU(inplace=True),
            _dw(bf, stride), nn.BatchNorm2d(bf),
            nn.Conv2d(bf, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, repeats=(4, 8, 4),
                 channels=(24, 116, 232, 464, 1024)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = channels[0]
        stages = []
        for n, cout in zip(repeats, channels[1:4]):
            stages.append(nn.Sequential(ShuffleBlock(cin, cout, 2),
                                        *[ShuffleBlock(cout, cout, 1) for _ in range(n - 1)]))
            cin = cout
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = nn.Sequential(nn.Conv2d(cin, channels[-1], 1, bias=False),
                                   nn.BatchNorm2d(channels[-1]), nn.ReLU(inplace=True))
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))


@_register("shufflenet_v2", "image",
           description="torchvision ShuffleNetV2 x1.0 (channel split and shuffle)")
def _shufflenet_v2(res, classes, gen):
    return _classifier(ShuffleNetV2(classes), res, gen)
