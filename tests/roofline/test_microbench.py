"""The micro-benchmark measures what it says: its figures agree with a direct
timing of the same operation in the same run (within the noise of a shared
machine), and the low-precision GEMMs come from a real engine run."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgert import microbench


def _best(call, n=5):
    call()
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def test_gemm_rate_is_flops_over_time():
    m = microbench.gemm_fp32(seconds=0.3, sizes=(256,))
    a = np.ones((256, 256), np.float32)
    direct = 2 * 256 ** 3 / _best(lambda: a @ a, 20) / 1e9
    assert m.unit == "GFLOP/s" and m.detail["n"] == 256
    # best-of timings of the same product: the same order of magnitude on a busy machine
    assert direct / 5 < m.value < direct * 5


def test_bandwidth_counts_read_and_write():
    m = microbench.memory_bandwidth(seconds=0.3, array_mb=16, threads=1)
    src = np.ones(16 * 2 ** 20 // 8)
    dst = np.empty_like(src)
    direct = 2 * src.nbytes / _best(lambda: np.copyto(dst, src)) / 1e9
    assert m.unit == "GB/s" and m.detail == {"array_mb": 16, "threads": 1,
                                             "counted": "read + write"}
    assert direct / 5 < m.value < direct * 5


def test_int8_gemm_through_onnxruntime():
    pytest.importorskip("onnxruntime")
    m = microbench.gemm_onnxruntime("int8", seconds=0.2, n=256)
    assert m is not None and m.unit == "GOP/s" and m.value > 0
    assert "MatMulInteger" in m.method and "uint8 x int8" in m.method
    with pytest.raises(ValueError):
        microbench.gemm_onnxruntime("fp64")
