"""Quantization-aware training to full-int8 TFLite and MNN, on scikit-learn's digits.

    python examples/quantize_digits.py --out digits_out

1. trains a small CNN (conv-BN-ReLU x3, max pooling, two linear layers) on the
   8x8 digits (seconds on a CPU);
2. fine-tunes it with eager-mode QAT (``torch.ao.quantization``, x86 qconfig:
   per-channel int8 weights, uint8 activations);
3. converts the QAT model to full-int8 TFLite and MNN with ``converters.convert``
   (the table comes from the QAT model's fake-quant modules, matched to the
   graph by value) and writes the table as JSON;
4. reports, on the held-out split, the accuracy of the float model, of PyTorch's
   fake-quant simulation and of both int8 models, and each int8 model's top-1
   agreement with the simulation.

The functions are reused by the acceptance test and ``make demo``.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def load_split(seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as float32 images in [0, 1], shape (N, 1, 8, 8); 75/25 split, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return tuple(train_test_split(x, d.target.astype(np.int64), test_size=0.25,
                                  random_state=seed, stratify=d.target))


def build_model():
    import torch.nn as nn
    import torch.ao.quantization as tq

    class DigitsNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
            self.conv2, self.bn2, self.relu2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv3, self.bn3, self.relu3 = nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()
            self.fc1, self.relu4 = nn.Linear(32 * 4 * 4, 64), nn.ReLU()
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            x = self.quant(x)
            x = self.relu1(self.bn1(self.conv1(x)))
            x = self.pool(self.relu2(self.bn2(self.conv2(x))))
            x = self.relu3(self.bn3(self.conv3(x)))
            x = self.relu4(self.fc1(x.flatten(1)))
            return self.dequant(self.fc2(x))

    return DigitsNet()


FUSE = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3", "relu3"],
        ["fc1", "relu4"]]


def _train(model, x, y, epochs: int, lr: float, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def train_float(x, y, seed: int = 0, epochs: int = 15):
    import torch

    torch.manual_seed(seed)
    model = build_model()
    _train(model, x, y, epochs, 3e-3, seed)
    return model.eval()


def qat_finetune(float_model, x, y, seed: int = 0, epochs: int = 4):
    """Fuse, prepare for QAT (x86 qconfig), fine-tune; observers and BN frozen at the end."""
    import copy

    import torch
    import torch.ao.quantization as tq

    m = copy.deepcopy(float_model).train()
    m.qconfig = tq.get_default_qat_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = tq.fuse_modules_qat(m, FUSE)
        m = tq.prepare_qat(m)
    _train(m, x, y, epochs - 1, 5e-4, seed + 1)
    m.apply(tq.disable_observer)
    m.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
    _train(m, x, y, 1, 2e-4, seed + 2)
    return m.eval()


def predict_torch(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy().argmax(1)


def predict_file(path: str, x: np.ndarray) -> np.ndarray:
    """Top-1 of a converted model over ``x``, one sample at a time (batch 1 models)."""
    import edgert

    sess = edgert.load(path, threads=1, check="structure")
    name = sess.inputs[0].name
    try:
        return np.array([int(np.argmax(list(sess.run({name: x[i:i + 1]}).values())[0]))
                         for i in range(len(x))])
    finally:
        sess.close()


@dataclass
class DigitsResult:
    accuracy: Dict[str, float]
    agreement: Dict[str, float]
    paths: Dict[str, str]
    report: object

    def rows(self):
        return [[k, f"{100 * v:.2f}%", f"{100 * self.agreement[k]:.2f}%"
                 if k in self.agreement else "-"] for k, v in self.accuracy.items()]


def run(out_dir: str, seed: int = 0, epochs: int = 15, qat_epochs: int = 4,
        load_check: str = "isolated") -> DigitsResult:
    """The whole flow; returns accuracies and agreements on the held-out split."""
    import torch
    from converters import convert
    from quant_tables.producers.qat_torch import fake_quant_reference

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a small net: one thread is fastest, and deterministic
    try:
        x_tr, x_te, y_tr, y_te = load_split(seed)
        flt = train_float(x_tr, y_tr, seed, epochs)
        qat = qat_finetune(flt, x_tr, y_tr, seed, qat_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = convert(qat, targets=("tflite", "mnn"), precision="int8", name="digits",
                             example_inputs=(torch.from_numpy(x_tr[:1]),), out_dir=out_dir,
                             verify_inputs={"x": x_te[:1]},
                             load_check=load_check)
    finally:
        torch.set_num_threads(threads)
    sim = fake_quant_reference(qat, (torch.from_numpy(x_te),)).numpy().argmax(1)
    preds = {"float (PyTorch)": predict_torch(flt, x_te), "QAT fake-quant (PyTorch)": sim}
    paths = {}
    for t in report.targets:
        key = f"int8 {t.target}"
        paths[t.target] = t.path
        preds[key] = predict_file(t.path, x_te)
    acc = {k: float(np.mean(v == y_te)) for k, v in preds.items()}
    agree = {k: float(np.mean(v == sim)) for k, v in preds.items() if k.startswith("int8")}
    paths["table"] = os.path.join(out_dir, "digits.int8.quant.json")
    return DigitsResult(acc, agree, paths, report)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="digits_out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from edgert.formatting import print_table

    res = run(args.out, args.seed)
    print_table("digits, held-out split (450 images)", ["model", "accuracy",
                                                        "agreement with fake-quant"], res.rows())
    for k, v in res.paths.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
