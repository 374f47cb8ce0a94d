"""Benchmark: how long converting an ONNX file takes, against the backends alone.

Per model, in the same run: edgert's ``convert(path, "mnn,tflite", precision="fp32")``
with verification (the whole flow, imports already warm: what each conversion of a
session costs), against MNN's converter alone (``_tools.mnnconvert`` on the same ONNX
in a child process: the call itself, and the child's wall time with its Python start)
and the TFLite writer alone (the TFLite backend's check + write on edgert's optimized
graph, in process); and ``edgert convert`` on the command line (a fresh process each
time: what a user waits for) against MNN's converter with its Python start. Ratios
are ours / theirs; the stage times come from the report (``report.stages``). Best of
``--runs`` for every figure (the machine is shared), and ``med x``: the median of ours
over the median of MNN's call (what a conversion costs typically, pauses included).

Models: the zoo's resnet18 and mobilenet_v2 at 224 (TorchScript export), and a
detector-like graph of 547 nodes (``detector()``: a DB-net in the manner of PP-OCR's).

    python bench/bench_convert_time.py [--models resnet18,mobilenet_v2,detector] [--runs 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_ALONE = """
import json, sys, time, _tools
args = json.loads(sys.argv[1])
t = time.perf_counter()
ok = _tools.mnnconvert(args)
print("EDGERT_SECONDS", time.perf_counter() - t, flush=True)
"""


def mnn_alone(onnx_path: str, mnn_path: str):
    """(call seconds, child wall seconds) of MNN's converter alone."""
    args = ["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", mnn_path,
            "--bizCode", "edgert"]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _ALONE, json.dumps(args)],
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    secs = [float(ln.split()[1]) for ln in proc.stdout.splitlines()
            if ln.startswith("EDGERT_SECONDS")]
    if proc.returncode != 0 or not secs or not os.path.exists(mnn_path):
        raise RuntimeError(f"MNN alone failed on {onnx_path}: {proc.stdout[-300:]}")
    return secs[0], wall


def cli_wall(onnx_path: str, out_dir: str) -> float:
    """Wall seconds of ``edgert convert`` as a user types it (a fresh process: Python's
    start, the imports, the zygotes' start, the whole flow), fp32 to both targets."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgert", "convert", onnx_path, "--to",
                           "mnn,tflite", "--precision", "fp32", "--out", out_dir,
                           "--overwrite"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"edgert convert failed: {proc.stderr[-300:]}")
    return time.perf_counter() - t


def tflite_alone(optimized_onnx: str, out: str) -> float:
    """The TFLite backend's check + write on edgert's optimized graph (in process)."""
    import onnx_ir as ir

    from converters.backends import BackendOptions, get_backend

    model = ir.load(optimized_onnx)
    backend = get_backend("tflite")
    opts = BackendOptions(precision="fp32")
    t = time.perf_counter()
    backend.write(backend.check(model, opts), out, opts)
    return time.perf_counter() - t


def ours(onnx_path: str, out_dir: str):
    """(seconds, report) of edgert's conversion to both targets with verification."""
    from converters import convert

    t = time.perf_counter()
    report = convert(onnx_path, "mnn,tflite", out_dir=out_dir, precision="fp32")
    return time.perf_counter() - t, report


def detector():
    """A DB-net-like text detector in the manner of PP-OCR's: MobileNetV3-small features at
    four strides, a residual-SE FPN and a PAN (1x1 laterals, nearest upsampling, strided
    3x3 downsampling, a squeeze-excitation on every branch), the probability and threshold
    heads (conv + two transposed convolutions + sigmoid each). Seeded weights, 1x3x320x320;
    exported without constant folding at opset 13, as converters of other frameworks write
    graphs (shape arithmetic and HardSwish as small ops): 547 nodes."""
    import torch
    from torch import nn

    from converters import zoo

    backbone = zoo.build("mobilenet_v3_small", resolution=320).module.features
    taps, chans, x = [], [], torch.zeros(1, 3, 64, 64)
    for i, layer in enumerate(backbone):
        y = layer(x)
        if y.shape[-1] < x.shape[-1] and i > 0:
            taps.append(i - 1)
            chans.append(x.shape[1])
        x = y
    taps.append(len(backbone) - 1)
    chans.append(x.shape[1])
    taps, chans = taps[-4:], chans[-4:]
    width = 64

    class RSE(nn.Module):
        """A conv followed by squeeze-excitation, with a residual connection."""

        def __init__(self, cin, cout, k=1, stride=1):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, stride, k // 2)
            self.squeeze = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout // 4, 1),
                                         nn.ReLU(), nn.Conv2d(cout // 4, cout, 1),
                                         nn.Hardsigmoid())

        def forward(self, x):
            y = self.conv(x)
            return y + y * self.squeeze(y)

    def head():
        return nn.Sequential(
            nn.Conv2d(width, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 16, 2, 2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 2, 2), nn.Sigmoid())

    class DB(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.lat = nn.ModuleList(RSE(c, width) for c in chans)
            self.smooth = nn.ModuleList(nn.Sequential(RSE(width, width // 4, 3),
                                                      RSE(width // 4, width // 4, 3))
                                        for _ in chans)
            self.down = nn.ModuleList(RSE(width // 4, width // 4, 3, 2) for _ in chans[1:])
            self.pan = nn.ModuleList(nn.Sequential(RSE(width // 4, width // 4, 3),
                                                   RSE(width // 4, width // 4, 3))
                                     for _ in chans)
            self.prob, self.thresh = head(), head()

        def forward(self, x):
            feats = []
            for i, layer in enumerate(self.backbone):
                x = layer(x)
                if i in taps:
                    feats.append(x)
            lat = [conv(f) for conv, f in zip(self.lat, feats)]
            for k in range(len(lat) - 1, 0, -1):
                lat[k - 1] = lat[k - 1] + nn.functional.interpolate(
                    lat[k], size=lat[k - 1].shape[-2:], mode="nearest")
            sm = [s(v) for s, v in zip(self.smooth, lat)]
            for k in range(1, len(sm)):
                sm[k] = sm[k] + nn.functional.interpolate(
                    self.down[k - 1](sm[k - 1]), size=sm[k].shape[-2:], mode="nearest")
            size = sm[0].shape[-2:]
            fused = torch.cat([nn.functional.interpolate(p(v), size=size, mode="nearest")
                               for p, v in zip(self.pan, sm)], 1)
            return torch.cat([self.prob(fused), self.thresh(fused)], 1)

    torch.manual_seed(0)
    model = DB().eval()
    return model, (torch.rand(1, 3, 320, 320),)


def export(name: str, path: str) -> int:
    """Export model ``name`` with the TorchScript exporter; its node count."""
    import onnx
    import torch

    from converters import zoo

    if name == "detector":
        module, example = detector()
    else:
        z = zoo.build(name)
        module, example = z.module, z.example_inputs
    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, path, input_names=["input"], output_names=["out"],
                          opset_version=13 if name == "detector" else 17, dynamo=False,
                          do_constant_folding=name != "detector")
    logging.disable(logging.NOTSET)
    return len(onnx.load(path, load_external_data=False).graph.node)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2,detector")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-convert-time-")
    names = args.models.split(",")
    paths = {n: os.path.join(work, f"{n}.onnx") for n in names}
    nodes = {n: export(n, paths[n]) for n in names}
    ours(paths[names[0]], os.path.join(work, "warm"))          # imports, the zygote
    print(f"{'model':14s} {'nodes':>5s} {'ours s':>7s} {'MNN s':>6s} {'MNN+py s':>8s} "
          f"{'x MNN':>6s} {'med x':>6s} {'x MNN+py':>8s} {'TFLite s':>8s} {'x TFLite':>8s} {'CLI s':>6s} "
          f"{'CLI x MNN+py':>12s}  stages (s)")
    for n in names:
        best, stages, times = None, None, []
        for _ in range(args.runs):
            secs, report = ours(paths[n], os.path.join(work, n))
            times.append(secs)
            if best is None or secs < best:
                best, stages = secs, report.stages
        alone = [mnn_alone(paths[n], os.path.join(work, f"{n}.alone.mnn"))
                 for _ in range(args.runs)]
        call, wall = min(a[0] for a in alone), min(a[1] for a in alone)
        median_x = statistics.median(times) / statistics.median(a[0] for a in alone)
        optimized = os.path.join(work, n, f"{n}.optimized.onnx")
        tfl = min(tflite_alone(optimized, os.path.join(work, f"{n}.alone.tflite"))
                  for _ in range(args.runs))
        cli = min(cli_wall(paths[n], os.path.join(work, f"{n}.cli"))
                  for _ in range(args.runs))
        shown = " ".join(f"{k}={v:.2f}" for k, v in stages.items() if v >= 0.01)
        print(f"{n:14s} {nodes[n]:5d} {best:7.2f} {call:6.2f} {wall:8.2f} {best / call:6.1f} "
              f"{median_x:6.1f} {best / wall:8.1f} {tfl:8.2f} {best / tfl:8.1f} {cli:6.2f} "
              f"{cli / wall:12.1f}  {shown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
