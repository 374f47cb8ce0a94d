"""Measured roofs: the GEMM throughput and memory bandwidth a device attains.

A roofline built from datasheet peaks says what a chip could do; one built from
measured roofs says what software on it does. This module measures the second
with numpy alone, so the device farm can run it on a board that has nothing
else (``python -m edgert roofs --json``):

- fp32 GEMM: ``np.matmul`` on square float32 matrices, growing the size until
  one product takes long enough to time well; the best GFLOP/s (2*n^3 / t) of
  all runs. numpy's BLAS (OpenBLAS, Accelerate, ...) uses every core.
- memory bandwidth: ``np.copyto`` of arrays far larger than the caches, one
  thread and one thread per core (numpy releases the GIL for the copy); the
  best GB/s, counting bytes read + written as STREAM's copy does.
- fp16 and int8 GEMM: numpy has no fast kernels for them (its int8 matmul is
  a scalar loop and would measure numpy, not the chip), so these come from ONNX
  Runtime's MatMul (fp16) and MatMulInteger (uint8 x int8 -> int32, MLAS) when
  onnx and onnxruntime are installed, and are left unmeasured (None) otherwise.

Figures are best-of-N: a roof is what the device *can* attain, and on a shared
or throttling device the best run is the closest to it.
"""
from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from edgert.timing import cpu_count

GEMM_SIZES = (512, 1024, 1536, 2048)
_MB = 1 << 20


@dataclass
class Measurement:
    """One measured roof: ``value`` in ``unit`` (GFLOP/s, GOP/s or GB/s)."""

    value: float
    unit: str
    method: str
    detail: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _best_time(call: Callable[[], object], seconds: float, min_runs: int = 3,
               max_runs: int = 1000) -> float:
    """Fastest of repeated runs (at least ``min_runs``, until ``seconds`` pass)."""
    call()                                    # first touch, lazy init
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < min_runs or (time.perf_counter() - start < seconds and runs < max_runs):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def _blas_threads() -> Optional[int]:
    try:
        from threadpoolctl import threadpool_info  # optional: tells how many threads BLAS uses
    except ImportError:
        return None
    counts = [i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"]
    return counts[0] if counts else None


def gemm_fp32(seconds: float = 1.0, sizes=GEMM_SIZES, seed: int = 0) -> Measurement:
    """Best fp32 GEMM GFLOP/s of ``np.matmul`` over growing square sizes."""
    rng = np.random.default_rng(seed)
    per_size = seconds / len(sizes)
    best, best_n = 0.0, 0
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), dtype=np.float32)
        t = _best_time(lambda: np.matmul(a, b, out=c), per_size)  # noqa: B023 - timed now
        rate = 2.0 * n ** 3 / t / 1e9
        if rate > best:
            best, best_n = rate, n
        if t > max(per_size / 3, 0.2):        # a slow device: larger sizes would blow the budget
            break
    return Measurement(best, "GFLOP/s", f"numpy.matmul float32 {best_n}x{best_n}",
                       {"n": best_n, "blas_threads": _blas_threads(), "numpy": np.__version__})


def _default_array_mb() -> int:
    """128 MiB per array, less on a device with little free memory (a 1 GB board)."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 128
    return int(max(16, min(128, avail // 8 // _MB)))


def _threaded_copy(dst: np.ndarray, src: np.ndarray, threads: int) -> None:
    if threads == 1:
        np.copyto(dst, src)
        return
    n = src.size
    bounds = [i * n // threads for i in range(threads + 1)]
    workers = [threading.Thread(target=np.copyto, args=(dst[lo:hi], src[lo:hi]))
               for lo, hi in zip(bounds, bounds[1:])]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def memory_bandwidth(seconds: float = 1.0, array_mb: Optional[int] = None,
                     threads: Optional[int] = None) -> Measurement:
    """Best copy bandwidth in GB/s (read + write bytes), 1 thread and one per core."""
    mb = int(array_mb or _default_array_mb())
    src = np.ones(mb * _MB // 8, dtype=np.float64)
    dst = np.zeros_like(src)
    options = [threads] if threads else sorted({1, cpu_count()})
    best, best_threads = 0.0, 1
    for k in options:
        t = _best_time(lambda: _threaded_copy(dst, src, k),  # noqa: B023 - timed now
                       seconds / len(options))
        rate = 2.0 * src.nbytes / t / 1e9
        if rate > best:
            best, best_threads = rate, k
    return Measurement(best, "GB/s", f"numpy.copyto {mb} MiB float64, {best_threads} thread(s)",
                       {"array_mb": mb, "threads": best_threads, "counted": "read + write"})


def gemm_onnxruntime(precision: str, seconds: float = 1.0, n: int = 1536,
                     threads: Optional[int] = None, seed: int = 0) -> Optional[Measurement]:
    """fp16 (MatMul) or int8 (MatMulInteger u8 x s8) GEMM in ONNX Runtime, or None
    when onnx or onnxruntime is missing or the CPU provider cannot run it."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(seed)
    if precision == "int8":
        op, a_type, out_type = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
        b = rng.integers(-127, 128, (n, n), dtype=np.int8)
    elif precision == "fp16":
        op, a_type, out_type = "MatMul", TensorProto.FLOAT16, TensorProto.FLOAT16
        a = rng.standard_normal((n, n)).astype(np.float16)
        b = rng.standard_normal((n, n)).astype(np.float16)
    else:
        raise ValueError(f"gemm_onnxruntime measures fp16 or int8, not {precision!r}")
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])], "gemm",
        [helper.make_tensor_value_info("A", a_type, [n, n])],
        [helper.make_tensor_value_info("Y", out_type, [n, n])],
        [numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or cpu_count()
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        t = _best_time(lambda: sess.run(None, {"A": a}), seconds)
    except Exception:  # noqa: BLE001 - a provider without the kernel: not measurable here
        return None
    unit = "GOP/s" if precision == "int8" else "GFLOP/s"
    return Measurement(2.0 * n ** 3 / t / 1e9, unit,
                       f"onnxruntime {ort.__version__} {op} {n}x{n} "
                       f"({'uint8 x int8 -> int32' if precision == 'int8' else 'float16'})",
                       {"n": n, "threads": opts.intra_op_num_threads})


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and val.strip():
                    return val.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_roofs(seconds: float = 3.0, array_mb: Optional[int] = None,
                  low_precision: bool = True) -> Dict[str, object]:
    """Measure this device's roofs; the result has the shape of a devices.json entry
    (``peak_gflops[precision] = {value, source}``, ``bandwidth_gbps``), so the
    roofline takes it the same way as a datasheet device."""
    share = seconds / (4 if low_precision else 2)
    gemm = gemm_fp32(share)
    bw = memory_bandwidth(share, array_mb)
    peaks: Dict[str, Optional[Dict[str, object]]] = {"fp32": _entry(gemm), "fp16": None,
                                                     "int8": None}
    if low_precision:
        for p in ("fp16", "int8"):
            m = gemm_onnxruntime(p, share)
            peaks[p] = _entry(m) if m else None
    return {
        "name": "host", "title": f"{cpu_name()} ({cpu_count()} CPUs), measured",
        "unit": "cpu", "measured": True,
        "peak_gflops": peaks, "bandwidth_gbps": _entry(bw),
        "host": {"machine": platform.machine(), "system": platform.system(),
                 "cpus": cpu_count(), "python": platform.python_version(),
                 "numpy": np.__version__,
                 "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def _entry(m: Measurement) -> Dict[str, object]:
    return {"value": round(m.value, 3), "source": f"measured: {m.method}", "detail": m.detail}
