"""Architectures a new user brings that neither the zoo nor ``user_modules`` holds, each
in the form its authors write it: ConvNeXt (depthwise 7x7, channels-last LayerNorm, layer
scale), a ViT (patch embedding, class token, pre-norm encoder), RegNetY (grouped
bottlenecks with SE), a YOLOv8n-style detector (C2f split/concat, SPPF, nearest
upsampling, DFL softmax and an anchor grid), a CRNN text recognizer (height squeezed,
BiLSTM, CTC log-softmax), a depth decoder (PixelShuffle, reflect padding, bilinear), a
keyword spotter (BatchNorm1d, Conv1d, BiGRU, attention pooling), Swin-style shifted
window attention (roll, relative position bias gathered by a constant index) and a
model with three inputs and outputs of mixed rank (one a matmul output also read by other
ops). Probing these found the MNN and TFLite faults their tests pin
(``test_architectures.py``). Weights are seeded
BatchNorm statistics are perturbed so
folding changes real numbers."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = super().forward(x)
        return x.permute(0, 3, 1, 2)

class ConvNeXtBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pw1 = nn.Linear(c, 4 * c)
        self.pw2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)

class ConvNeXtTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 4, 4), LayerNorm2d(24, eps=1e-6))
        self.s1 = nn.Sequential(ConvNeXtBlock(24), ConvNeXtBlock(24))
        self.down = nn.Sequential(LayerNorm2d(24, eps=1e-6), nn.Conv2d(24, 48, 2, 2))
        self.s2 = nn.Sequential(ConvNeXtBlock(48))
        self.head = nn.Sequential(nn.LayerNorm(48), nn.Linear(48, 10))

    def forward(self, x):
        x = self.s2(self.down(self.s1(self.stem(x))))
        return self.head(x.mean([-2, -1]))

class ViTTiny(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * .02)
        self.pos = nn.Parameter(torch.randn(1, 17, d) * .02)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.enc(x)
        return self.head(self.norm(x[:, 0]))

class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))

class RegNetBlock(nn.Module):
    def __init__(self, cin, cout, stride, gw=8):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, stride, 1, groups=cout // gw, bias=False),
                               nn.BatchNorm2d(cout), nn.ReLU())
        self.se = SE(cout, max(1, cin // 4))
        self.c = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.proj = None if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.c(self.se(self.b(self.a(x))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))

class RegNetY(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.body = nn.Sequential(RegNetBlock(16, 24, 2), RegNetBlock(24, 24, 1), RegNetBlock(24, 56, 2))
        self.fc = nn.Linear(56, 10)

    def forward(self, x):
        return self.fc(self.body(self.stem(x)).mean((2, 3)))

class Conv(nn.Module):
    def __init__(self, a, b, k=1, s=1):
        super().__init__()
        self.c = nn.Conv2d(a, b, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(b)

    def forward(self, x):
        return F.silu(self.bn(self.c(x)))

class C2f(nn.Module):
    def __init__(self, a, b, n=1):
        super().__init__()
        self.c = b // 2
        self.cv1 = Conv(a, 2 * self.c)
        self.cv2 = Conv((2 + n) * self.c, b)
        self.m = nn.ModuleList(nn.Sequential(Conv(self.c, self.c, 3), Conv(self.c, self.c, 3))
                               for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) + y[-1] for m in self.m)
        return self.cv2(torch.cat(y, 1))

class SPPF(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.cv1 = Conv(a, a // 2)
        self.cv2 = Conv(a * 2, b)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))

class YoloLike(nn.Module):
    """YOLOv8n-style: C2f, SPPF, FPN upsample, decoupled head with DFL and anchors."""

    def __init__(self, nc=4, reg=8):
        super().__init__()
        self.reg = reg
        self.nc = nc
        self.b1 = nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 16, 3, 2), C2f(16, 16))
        self.b2 = nn.Sequential(Conv(16, 32, 3, 2), C2f(32, 32))
        self.b3 = nn.Sequential(Conv(32, 64, 3, 2), C2f(64, 64), SPPF(64, 64))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n1 = C2f(96, 32)
        self.box = nn.ModuleList([nn.Conv2d(32, 4 * reg, 1), nn.Conv2d(64, 4 * reg, 1)])
        self.cls = nn.ModuleList([nn.Conv2d(32, nc, 1), nn.Conv2d(64, nc, 1)])
        self.register_buffer("proj", torch.arange(reg, dtype=torch.float32))

    def forward(self, x):
        p3 = self.b2(self.b1(x))
        p4 = self.b3(p3)
        n3 = self.n1(torch.cat([self.up(p4), p3], 1))
        outs, anchors, strides = [], [], []
        for i, (f, s) in enumerate(((n3, 8), (p4, 16))):
            b, _, h, w = f.shape
            outs.append(torch.cat([self.box[i](f), self.cls[i](f)], 1).view(b, 4 * self.reg + self.nc, -1))
            sy, sx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), float(s)))
        y = torch.cat(outs, 2)
        box, cls = y.split((4 * self.reg, self.nc), 1)
        b = box.shape[0]
        dist = box.view(b, 4, self.reg, -1).transpose(2, 1).softmax(1)
        dist = (dist * self.proj.view(1, -1, 1, 1)).sum(1)      # b, 4, N
        anc = torch.cat(anchors).t().unsqueeze(0)
        lt, rb = dist.chunk(2, 1)
        xy = (anc + (rb - lt) / 2) * torch.cat(strides).t()
        wh = (lt + rb) * torch.cat(strides).t()
        return torch.cat((xy, wh, cls.sigmoid()), 1)

class CRNN(nn.Module):
    """PP-OCR / CRNN-style text recognizer: conv, height squeezed, BiLSTM, CTC logits."""

    def __init__(self, ncls=37):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.MaxPool2d((2, 1)),
                                 nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.Hardswish(),
                                 nn.AdaptiveAvgPool2d((1, None)))
        self.rnn = nn.LSTM(32, 24, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(48, ncls)

    def forward(self, x):
        f = self.cnn(x).squeeze(2).permute(0, 2, 1)
        y, _ = self.rnn(f)
        return self.fc(y).log_softmax(-1)

class DepthDecoder(nn.Module):
    """Monocular depth style: encoder, PixelShuffle + bilinear decoder, sigmoid disparity."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ELU())
        self.e2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ELU())
        self.d2 = nn.Sequential(nn.Conv2d(32, 64, 3, 1, 1), nn.PixelShuffle(2))
        self.d1 = nn.Conv2d(16 + 16, 8, 3, 1, 1, padding_mode="reflect")
        self.out = nn.Conv2d(8, 1, 3, 1, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(a)
        u = torch.cat([self.d2(b), a], 1)
        u = F.interpolate(F.elu(self.d1(u)), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.out(u))

class AudioGRU(nn.Module):
    """Keyword spotting on log-mel frames: BatchNorm1d, Conv1d, bidirectional GRU, attention pooling."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(40)
        self.conv = nn.Conv1d(40, 32, 5, padding=2)
        self.gru = nn.GRU(32, 16, batch_first=True, bidirectional=True)
        self.att = nn.Linear(32, 1)
        self.fc = nn.Linear(32, 12)

    def forward(self, x):
        h = F.relu(self.conv(self.bn(x))).transpose(1, 2)
        h, _ = self.gru(h)
        w = torch.softmax(self.att(h), 1)
        return self.fc((w * h).sum(1))

class SwinWindow(nn.Module):
    """Shifted-window attention with relative position bias (gather by a constant index)."""

    def __init__(self, d=16, ws=4, heads=2):
        super().__init__()
        self.ws, self.h, self.d = ws, heads, d
        self.embed = nn.Conv2d(3, d, 2, 2)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, heads) * 0.1)
        c = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        r = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + ws - 1
        self.register_buffer("idx", (r[..., 0] * (2 * ws - 1) + r[..., 1]).flatten())
        self.fc = nn.Linear(d, 5)

    def forward(self, x):
        x = self.embed(x).permute(0, 2, 3, 1)            # B H W C
        B, H, W, C = x.shape
        ws = self.ws
        x = torch.roll(x, (-ws // 2, -ws // 2), (1, 2))
        w = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)
        q, k, v = self.qkv(self.norm(w)).reshape(-1, ws * ws, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) * (C // self.h) ** -0.5
        bias = self.table[self.idx].view(ws * ws, ws * ws, -1).permute(2, 0, 1)
        a = (a + bias.unsqueeze(0)).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(-1, ws * ws, C)
        o = self.proj(o) + w
        return self.fc(o.mean(1).view(B, -1, C).mean(1))

class MultiInOut(nn.Module):
    """Two image inputs of different sizes, a scalar-ish side input, three outputs of mixed rank."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, 2, 1)
        self.b = nn.Conv2d(1, 8, 3, 1, 1)
        self.fc = nn.Linear(16 + 4, 6)

    def forward(self, img, mask, meta):
        fa = F.relu(self.a(img))
        fb = F.relu(self.b(mask))
        fused = fa * torch.sigmoid(fb)
        g = torch.cat([fused.amax((2, 3)), fb.mean((2, 3)), meta], 1)
        logits = self.fc(g)
        return logits, fused, torch.clamp(logits, min=-1.0).exp().sum(1, keepdim=True)

MODELS = {
    "convnext": (ConvNeXtTiny, [(1, 3, 32, 32)]),
    "vit": (ViTTiny, [(1, 3, 32, 32)]),
    "regnety": (RegNetY, [(1, 3, 32, 32)]),
    "yolo": (YoloLike, [(1, 3, 64, 64)]),
    "crnn": (CRNN, [(1, 1, 32, 64)]),
    "depth": (DepthDecoder, [(1, 3, 32, 32)]),
    "audio_gru": (AudioGRU, [(1, 40, 20)]),
    "swin": (SwinWindow, [(1, 3, 16, 16)]),
    "multi_io": (MultiInOut, [(1, 3, 16, 16), (1, 1, 8, 8), (1, 4)]),
}

def build(name):
    cls, shapes = MODELS[name]
    torch.manual_seed(0)
    m = cls().eval()
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.normal_(0, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(1)
    return m, tuple(torch.randn(s, generator=g) for s in shapes)
