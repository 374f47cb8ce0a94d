"""Building blocks shared by the zoo architectures (torchvision's Conv2dNormActivation,
SqueezeExcitation and _make_divisible, written again because torchvision is not
installable beside torch 2.13)."""
from __future__ import annotations

from typing import Callable, Optional

from torch import nn


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round channels to a multiple of ``divisor`` without going down by more than 10%."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional activation, 'same' padding."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: Optional[Callable[..., nn.Module]] = nn.ReLU, bn_eps: float = 1e-5) -> None:
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                            bias=False),
                  nn.BatchNorm2d(cout, eps=bn_eps)]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.Hardswish,
                                                       nn.SiLU) else act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 conv down, act, 1x1 conv up, gate, scale."""

    def __init__(self, channels: int, squeeze: int, act: Callable[..., nn.Module] = nn.ReLU,
                 gate: Callable[..., nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = act()
        self.scale_activation = gate()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x
