"""Recurrent classifiers: an LSTM (two layers) and a GRU over a feature sequence,
classifying from the last time step. They export to ONNX's LSTM/GRU ops."""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import SEQUENCE_LENGTH, _register


class RecurrentClassifier(nn.Module):
    def __init__(self, cell: str, num_classes: int = 10, in_dim: int = 16, hidden: int = 32,
                 layers: int = 2) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(in_dim, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return self.head(seq[:, -1])


def _seeded_rnn(model: RecurrentClassifier, gen) -> RecurrentClassifier:
    with torch.no_grad():
        for p in model.rnn.parameters():
            bound = model.rnn.hidden_size ** -0.5
            p.uniform_(-bound, bound, generator=gen)
    return model


@_register("lstm", "sequence", native_resolution=SEQUENCE_LENGTH, default_classes=10,
           description="two-layer LSTM classifier")
def _lstm(seq_len, classes, gen):
    x = torch.randn(1, seq_len, 16, generator=gen)
    return _seeded_rnn(RecurrentClassifier("lstm", classes), gen), (x,), ["features"], \
        ["logits"], None


@_register("gru", "sequence", native_resolution=SEQUENCE_LENGTH, default_classes=10,
           description="two-layer GRU classifier")
def _gru(seq_len, classes, gen):
    x = torch.randn(1, seq_len, 16, generator=gen)
    return _seeded_rnn(RecurrentClassifier("gru", classes), gen), (x,), ["features"], \
        ["logits"], None
