"""A small pre-norm transformer encoder: multi-head self-attention written out
(Linear qkv, reshape/transpose into heads, MatMul, Softmax), LayerNorm, GELU MLP.
Attention is spelled out rather than using nn.MultiheadAttention so the exported
graph is the plain MatMul/Softmax form converters meet in the wild, and the head
split gives the shape-chain passes Reshape/Transpose chains to fold.

Two outputs: the encoded sequence and pooled class logits."""
from __future__ import annotations

import torch
from torch import nn

from converters.zoo import SEQUENCE_LENGTH, _register


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, s, d = x.shape
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (self.head_dim ** -0.5), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, s, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    def __init__(self, seq_len: int, num_classes: int = 10, in_dim: int = 32, dim: int = 64,
                 heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, dim))
        self.layers = nn.Sequential(*[EncoderLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        h = self.norm(self.layers(self.embed(x) + self.pos))
        return h, self.head(h.mean(1))


@_register("transformer_encoder", "sequence", native_resolution=SEQUENCE_LENGTH,
           default_classes=10, description="small transformer encoder (attention, LayerNorm, GELU)")
def _transformer_encoder(seq_len, classes, gen):
    model = TransformerEncoder(seq_len, classes)
    with torch.no_grad():
        model.pos.normal_(0.0, 0.1, generator=gen)
    x = torch.randn(1, seq_len, 32, generator=gen)
    return model, (x,), ["features"], ["hidden", "logits"], None
