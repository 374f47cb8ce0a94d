"""A MobileNetV2-style CNN trained on scikit-learn's digits upsampled to 64x64.

The real trained model of ``bench/bench_optimize.py`` (issue 18): scikit-learn's
8x8 digits (bundled with scikit-learn, nothing downloaded) resized bilinearly to
``size`` x ``size``, split 75/25 stratified; a MobileNetV2-style network (a stride-2
stem, inverted residual blocks with ReLU6 and linear bottlenecks, a 1x1 head,
global average pooling, one linear layer) trained with Adam for a few epochs on
the CPU (about a minute on two shared cores).

    from bench.digits_mobilenet import digits_split, train_digits_net
    data = digits_split(64)
    net = train_digits_net(data, epochs=8)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

#: expand ratio t, output channels c, repeats n, stride s (MobileNetV2's table, shortened)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1))


@dataclass
class DigitsData:
    """Train and held-out images (N, 1, size, size) in [0, 1] and their labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(size: int = 64, seed: int = 0) -> DigitsData:
    """Digits upsampled to ``size`` x ``size`` (bilinear), 75/25 stratified split."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)[:, None])
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                        align_corners=False).numpy()
    xtr, xte, ytr, yte = train_test_split(x, d.target.astype(np.int64), test_size=0.25,
                                          random_state=seed, stratify=d.target)
    return DigitsData(xtr, ytr, xte, yte)


def build_net(width: float = 1.0, head: int = 256, num_classes: int = 10):
    """The MobileNetV2-style network (torch module, train mode)."""
    from torch import nn

    from converters.zoo_models.layers import ConvNormAct
    from converters.zoo_models.mobilenet import InvertedResidualV2

    cin = int(32 * width)
    features = [ConvNormAct(1, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in SETTINGS:
        cout = int(c * width)
        for i in range(n):
            features.append(InvertedResidualV2(cin, cout, s if i == 0 else 1, t))
            cin = cout
    features.append(ConvNormAct(cin, head, 1, act=nn.ReLU6))
    return _net_class()(nn.Sequential(*features), nn.Linear(head, num_classes))


def _net_class():
    import torch
    from torch import nn

    class DigitsMobileNet(nn.Module):
        def __init__(self, features, classifier) -> None:
            super().__init__()
            self.features, self.classifier = features, classifier

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    return DigitsMobileNet


def train_digits_net(data: DigitsData, epochs: int = 8, seed: int = 0, width: float = 1.0,
                     lr: float = 3e-3, batch: int = 32, log: Optional[callable] = None):
    """Train the network on ``data`` (seeded); returns it in eval mode."""
    import torch

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # measured: 6x faster than 2 threads on a loaded 2-core machine
    net = build_net(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * ((len(data.x_train) + batch - 1) // batch))
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        net.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb = x[idx]
            shift = torch.randint(-3, 4, (2,), generator=g).tolist()   # small translations
            xb = torch.roll(xb, shifts=shift, dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, held-out accuracy "
                f"{accuracy(net, data.x_test, data.y_test):.4f} ({time.perf_counter() - t0:.1f} s)")
    torch.set_num_threads(threads)
    return net.eval()


def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a torch module on arrays (eval mode, batches of 128)."""
    import torch

    net.eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[i:i + 128])).argmax(1).numpy()
                               for i in range(0, len(x), 128)])
    return float(np.mean(pred == y))
