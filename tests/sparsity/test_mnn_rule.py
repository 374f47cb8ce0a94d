"""Our copy of MNN's sparsity rule (AddSparseInfo / statisticWeightSparsity), by hand."""
from __future__ import annotations

import numpy as np
import pytest

from converters.mnn.sparse import mnn_sparsity, threshold


def test_blocks_count_whole_and_tail_rows_count_alone():
    w = np.ones((6, 5, 1, 1), np.float32)       # 6 output channels: one block of 4 + 2 tail rows
    w[0:4, 0:3] = 0                             # 3 all-zero 4x1 blocks = 12 zeros
    w[1, 4] = 0                                 # a stray zero inside a live block: not counted
    w[5, 0] = 0                                 # a zero in a tail row: counted
    # nnz = 2 live blocks * 4 + tail (2 rows * 5 - 1) = 17 of 30
    assert mnn_sparsity(w, 0, 4) == pytest.approx(1 - 17 / 30)
    assert mnn_sparsity(w, 0, 1) == pytest.approx(14 / 30)      # block 1: plain zeros


def test_output_channels_on_another_axis():
    w = np.ones((8, 8), np.float32)            # [in, out] like a MatMul weight
    w[:, 0] = 0                                # output channel 0 is dead
    assert mnn_sparsity(w, 1, 4) == pytest.approx(0.0)     # 1 row of a 4-row block: no block
    assert mnn_sparsity(w, 0, 4) == pytest.approx(8 / 64)  # read as [out, in]: 2 zero blocks


def test_thresholds_fall_with_block_size():
    assert [threshold(b) for b in (1, 2, 3, 4, 8, 64)] == [0.6, 0.5, 0.4, 0.3, 0.3, 0.3]
