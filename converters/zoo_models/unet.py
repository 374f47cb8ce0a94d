"""A small U-Net for segmentation: three encoder levels, a bottleneck, and a
decoder that upsamples once with a transposed conv and once with a bilinear
resize, each followed by a skip concat, so both upsampling paths are exercised."""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import _register
from converters.zoo_models.layers import ConvNormAct


def _double(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(ConvNormAct(cin, cout, 3), ConvNormAct(cout, cout, 3))


class SmallUNet(nn.Module):
    def __init__(self, num_classes: int = 3, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _double(3, w), _double(w, 2 * w), _double(2 * w, 4 * w)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double(4 * w, 8 * w)
        self.up3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, stride=2)
        self.dec3 = _double(8 * w, 4 * w)
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.reduce2 = nn.Conv2d(4 * w, 2 * w, 1)
        self.dec2 = _double(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _double(2 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        b = self.bottleneck(self.pool(e3))
        d3 = self.dec3(torch.cat([self.up3(b), e3], 1))
        d2 = self.dec2(torch.cat([self.reduce2(self.up2(d3)), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


@_register("unet", "segmentation", native_resolution=128, default_classes=3,
           description="small U-Net (transposed conv and bilinear resize, skip concats)")
def _unet(res, classes, gen):
    x = torch.randn(1, 3, res, res, generator=gen)
    return SmallUNet(classes), (x,), ["input"], ["mask"], None
