"""TFLite's sparse tensor encoding (SparsityParameters), for constant weights.

A sparse constant stores only its non-zero values in the buffer; its
``SparsityParametersT`` says how to find them: a traversal order of the dims, an
optional block map, and per traversed dim a ``DimensionMetadataT`` that is DENSE
(just a size) or SPARSE_CSR (segments + indices). The interpreter densifies it
for kernels without a sparse path (XNNPACK does at load); FULLY_CONNECTED has
sparse kernels (op version 8): float CSR and 1x4 blocks, int8 1x16 blocks.

``encode`` writes any rank: the leading dims DENSE, the last dim SPARSE_CSR in
blocks of ``block`` elements (1: plain CSR; 4: TFLite's 1x4 float FC blocks; 16:
its int8 FC blocks) with a trailing DENSE block dim and ``block_map`` = [last];
index vectors take the smallest type that holds them. ``csr_2d`` is the plain
CSR of a 2-D weight with int32 indices. Which weights to encode, and how, is
decided in ``sparse.py`` from the sparsity table; ``SubgraphBuilder.const(...,
sparsity=, shape=)`` is where an encoded constant goes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

from converters.tflite.schema import schema


@dataclass
class Encoded:
    values: np.ndarray
    sparsity: Any                       # SparsityParametersT
    block: int


def _index_vector(values: np.ndarray, int32: bool = False) -> Tuple[int, Any]:
    s = schema()
    top = int(values.max()) if values.size else 0
    if int32:
        vec, kind, dtype = s.Int32VectorT(), s.SparseIndexVector.Int32Vector, np.int32
    elif top < 256:
        vec, kind, dtype = s.Uint8VectorT(), s.SparseIndexVector.Uint8Vector, np.uint8
    elif top < 65536:
        vec, kind, dtype = s.Uint16VectorT(), s.SparseIndexVector.Uint16Vector, np.uint16
    else:
        vec, kind, dtype = s.Int32VectorT(), s.SparseIndexVector.Int32Vector, np.int32
    vec.values = values.astype(dtype).tolist()
    return kind, vec


def encode(w: np.ndarray, block: int = 1, int32_indices: bool = False) -> Encoded:
    """``w`` with its last dim CSR-compressed in blocks of ``block`` (values may be empty).

    Raises ValueError when ``block`` does not divide the last dim."""
    s = schema()
    lead, last = int(np.prod(w.shape[:-1])), int(w.shape[-1])
    if last % block:
        raise ValueError(f"block {block} does not divide the last dim ({last})")
    blocks = w.reshape(lead, last // block, block)
    live = np.any(blocks != 0, axis=2)
    segments = np.concatenate([[0], np.cumsum(live.sum(axis=1))])
    indices = np.nonzero(live)[1]
    values = blocks[live].reshape(-1)
    dims = []
    for d in w.shape[:-1]:
        m = s.DimensionMetadataT()
        m.format, m.denseSize = s.DimensionType.DENSE, int(d)
        dims.append(m)
    csr = s.DimensionMetadataT()
    csr.format = s.DimensionType.SPARSE_CSR
    csr.arraySegmentsType, csr.arraySegments = _index_vector(segments, int32_indices)
    csr.arrayIndicesType, csr.arrayIndices = _index_vector(indices, int32_indices)
    dims.append(csr)
    params = s.SparsityParametersT()
    rank = w.ndim
    params.traversalOrder = list(range(rank + (1 if block > 1 else 0)))
    if block > 1:
        inner = s.DimensionMetadataT()
        inner.format, inner.denseSize = s.DimensionType.DENSE, int(block)
        dims.append(inner)
        params.blockMap = [rank - 1]
    params.dimMetadata = dims
    return Encoded(np.ascontiguousarray(values), params, block)


def block_sparsity(w: np.ndarray, block: int) -> float:
    """Fraction of the last dim's ``block``-element runs that are all zero (0 if it does not divide)."""
    if w.shape[-1] % block:
        return 0.0
    b = w.reshape(-1, w.shape[-1] // block, block)
    return float(1.0 - np.any(b != 0, axis=2).mean())


def csr_2d(dense: np.ndarray) -> Tuple[np.ndarray, object]:
    """(non-zero values in row order, SparsityParametersT) of a 2-D array."""
    dense = np.asarray(dense)
    if dense.ndim != 2:
        raise ValueError(f"csr_2d takes a 2-D array, not {dense.ndim}-D")
    enc = encode(dense, 1, int32_indices=True)
    return enc.values, enc.sparsity
