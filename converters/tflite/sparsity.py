"""TFLite's sparse tensor encoding (SparsityParameters), for constant weights.

A sparse constant stores only its non-zero values in the buffer; its
``SparsityParametersT`` says how to find them: a traversal order of the dims, an
optional block map, and per traversed dim a ``DimensionMetadataT`` that is DENSE
(just a size) or SPARSE_CSR (segments + indices). The interpreter densifies it
for kernels without a sparse path (XNNPACK does at load); FULLY_CONNECTED has
sparse kernels (op version 8): float CSR and 1x4 blocks, int8 1x16 blocks.

``csr_2d`` is the plain, unblocked CSR of a 2-D weight (rows dense, columns
sparse). Block formats and the table-driven choice of which weights to encode are
the sparsity helper's part; ``SubgraphBuilder.const(..., sparsity=, shape=)`` is
where an encoded constant goes.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from converters.tflite.schema import schema


def _int32_vector(values) -> object:
    v = schema().Int32VectorT()
    v.values = [int(x) for x in values]
    return v


def csr_2d(dense: np.ndarray) -> Tuple[np.ndarray, object]:
    """(non-zero values in row order, SparsityParametersT) of a 2-D array."""
    s = schema()
    dense = np.asarray(dense)
    if dense.ndim != 2:
        raise ValueError(f"csr_2d takes a 2-D array, not {dense.ndim}-D")
    rows = s.DimensionMetadataT()
    rows.format = s.DimensionType.DENSE
    rows.denseSize = int(dense.shape[0])
    nz = dense != 0
    cols = s.DimensionMetadataT()
    cols.format = s.DimensionType.SPARSE_CSR
    cols.arraySegmentsType = s.SparseIndexVector.Int32Vector
    cols.arraySegments = _int32_vector(np.concatenate([[0], np.cumsum(nz.sum(axis=1))]))
    cols.arrayIndicesType = s.SparseIndexVector.Int32Vector
    cols.arrayIndices = _int32_vector(np.nonzero(nz)[1])
    params = s.SparsityParametersT()
    params.traversalOrder = [0, 1]
    params.dimMetadata = [rows, cols]
    return np.ascontiguousarray(dense[nz]), params
