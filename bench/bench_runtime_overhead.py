"""Wrapper overhead of ``Session.run`` against the raw engine call, per engine.

Same small model in each format (a conv classifier as ONNX and MNN, a fully
connected layer as TFLite), same inputs. The two sides run in alternating
blocks so that machine noise hits both; the figure is the ratio of medians of
per-block mean times, plus the absolute difference per call.
Goal (issue 2): overhead under 5 % or under 20 us a call, whichever is larger.

Also: the wall time of ``python -c "import edgert"`` against ``python -c "import numpy"``.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import edgert  # noqa: E402
from tests.runtime import model_builders as mb  # noqa: E402

BLOCKS, CALLS = 30, 200


def _raw_litert(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def call():
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)
    return call


def _raw_ort(path, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda: s.run(None, {"input": x})


def _raw_mnn(path, x):
    import MNN

    F = MNN.expr
    rt = MNN.nn.create_runtime_manager(({"backend": "CPU", "numThread": 1,
                                         "precision": "normal"},))
    m = MNN.nn.load_module_from_file(path, ["input"], ["logits"], runtime_manager=rt)

    def call():
        out = m.forward([F.const(x, list(x.shape), F.NCHW)])[0]
        if out.data_format == F.NC4HW4:
            out = F.convert(out, F.NCHW)
        return np.array(out.read(), copy=True)
    return call


def _time_block(call) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(CALLS):
        call()
    return (time.perf_counter_ns() - t0) / CALLS / 1e3  # us per call


def measure(name, raw_call, wrapped_call):
    raw_call(), wrapped_call()
    raw, wrapped = [], []
    for _ in range(BLOCKS):
        raw.append(_time_block(raw_call))
        wrapped.append(_time_block(wrapped_call))
    r, w = statistics.median(raw), statistics.median(wrapped)
    ok = (w - r) < max(0.05 * r, 20.0)
    print(f"{name:12s} raw {r:8.1f} us  Session.run {w:8.1f} us  ratio {w / r:5.3f}  "
          f"overhead {w - r:+6.1f} us/call  {'OK' if ok else 'OVER GOAL'}")
    return w / r


def import_time():
    def t(code):
        best = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            best.append(time.perf_counter() - t0)
        return min(best)
    base, ours = t("import numpy"), t("import edgert")
    print(f"import       numpy {base * 1e3:6.1f} ms  edgert {ours * 1e3:6.1f} ms  "
          f"ratio {ours / base:4.2f}  (edgert adds {(ours - base) * 1e3:.1f} ms)")


def main():
    d = tempfile.mkdtemp()
    onnx_p, mnn_p, tfl_p = (os.path.join(d, n) for n in ("m.onnx", "m.mnn", "m.tflite"))
    mb.conv_classifier_onnx(onnx_p)
    mb.onnx_to_mnn(onnx_p, mnn_p)
    rng = np.random.default_rng(0)
    mb.fc_relu_tflite(tfl_p, rng.standard_normal((16, 64)).astype(np.float32),
                      rng.standard_normal(16).astype(np.float32))
    x_img = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    x_fc = rng.standard_normal((1, 64)).astype(np.float32)
    print(f"{BLOCKS} alternating blocks of {CALLS} calls, 1 thread")
    for name, path, raw_factory, x, feed in (
            ("litert", tfl_p, _raw_litert, x_fc, "x"),
            ("onnxruntime", onnx_p, _raw_ort, x_img, "input"),
            ("mnn", mnn_p, _raw_mnn, x_img, "input")):
        s = edgert.load(path, threads=1)
        feeds = {feed: x}
        measure(name, raw_factory(path, x), lambda: s.run(feeds))  # noqa: B023 - timed now
    import_time()


if __name__ == "__main__":
    main()
