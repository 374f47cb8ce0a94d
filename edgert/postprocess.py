"""Classification postprocessing: softmax and top-k, as the Android demo's Java core does them.

Dequantization is ``edgert.tensors.QuantParams.dequantize``. The definitions
here are the reference the Java core is tested against (shared test vector):
softmax in float64 with the max subtracted, then float32; top-k ordered by
score, ties broken by the lower class index.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax of a flat score vector (float64 inside, float32 out)."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    e = np.exp(x - x.max())
    return (e / e.sum()).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> List[Tuple[int, float]]:
    """``(index, score)`` of the ``k`` highest scores, highest first, ties by lower index."""
    x = np.asarray(scores, dtype=np.float32).reshape(-1)
    order = np.argsort(-x.astype(np.float64), kind="stable")[:max(0, k)]
    return [(int(i), float(x[i])) for i in order]


def top_k_classes(scores: np.ndarray, k: int) -> List[Tuple[int, float]]:
    """``(index, probability)`` of the ``k`` best classes, ranked on the scores themselves
    (ties by lower index), so rank 1 is always ``argmax``; probabilities are ``scores``
    when they already are (the model ends in a softmax), else their softmax.

    Ranking on float32 softmax values instead would tie logits that differ by less than
    float32 resolves after the exponential (near-flat logits: argmax 295, "top-1" 0)."""
    x = np.asarray(scores).reshape(-1)
    probs = x.astype(np.float32) if looks_like_probabilities(x) else softmax(x)
    return [(i, float(probs[i])) for i, _ in top_k_raw(x, k)]


def top_k_raw(scores: np.ndarray, k: int) -> List[Tuple[int, float]]:
    """``top_k`` on the values as given (float64 comparison, no float32 rounding first)."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-x, kind="stable")[:max(0, k)]
    return [(int(i), float(x[i])) for i in order]


def looks_like_probabilities(scores: np.ndarray, tol: float = 1e-2) -> bool:
    """True when ``scores`` are all in [0, 1] and sum to 1 (the model ends in a softmax)."""
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    return bool(x.size and x.min() >= -tol and x.max() <= 1 + tol and abs(x.sum() - 1) <= tol)


def label_of(index: int, labels: Optional[Sequence[str]]) -> str:
    return labels[index] if labels and 0 <= index < len(labels) else str(index)
