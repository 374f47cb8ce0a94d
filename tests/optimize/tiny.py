"""The tiny model of the optimize tests: a stem, one residual block, a 1x1 head, a
linear classifier (four units), 1x32x32 inputs, and 64 evaluation samples labelled
with the float model's own answers (so fp32 scores 100 %)."""
from __future__ import annotations

import os

import numpy as np

SPACE = dict(precisions=("fp32", "int8"), keeps=(1.0, 0.5))


def tiny_net():
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU())
            self.block = nn.Sequential(nn.Conv2d(16, 64, 1), nn.ReLU(),
                                       nn.Conv2d(64, 16, 3, 1, 1))
            self.head = nn.Sequential(nn.Conv2d(16, 64, 1), nn.ReLU())
            self.fc = nn.Linear(64, 4)

        def forward(self, x):
            x = self.stem(x)
            x = x + self.block(x)
            return self.fc(self.head(x).mean((2, 3)))

    torch.manual_seed(0)
    return Tiny().eval()


def tiny_files(folder: str):
    """(onnx path, eval .npz path) of the tiny model, written into ``folder``."""
    import torch

    net = tiny_net()
    x = np.random.default_rng(0).standard_normal((64, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).argmax(1).numpy()
    npz = os.path.join(folder, "eval.npz")
    np.savez(npz, x=x, labels=y)
    onnx_path = os.path.join(folder, "tiny.onnx")
    torch.onnx.export(net, (torch.from_numpy(x[:1]),), onnx_path, input_names=["x"],
                      dynamo=True)
    return onnx_path, npz
