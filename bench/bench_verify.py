"""What running verification in a crash-isolated child costs (issue 14, item 5).

Zoo models converted once to MNN and TFLite (verification off); then the verification
runs of each model, 4 input sets on both files, three ways, in alternating rounds:

* ``in-process``: ``edgert.load(check="structure")`` and the runs in this process (what
  ``--no-isolated-check`` did before: fastest, and a segfault kills the caller);
* ``probe per file``: the previous default: the runtime's isolated first load (a child
  per file, cold cache), then load and run in this process;
* ``one child``: ``converters.flow.isolation.run_isolated``: every file and every set in
  one child process, nothing of an engine in this process (today's convert()).

Printed: median wall seconds per model and the ratios one-child / in-process and
one-child / probe-per-file, measured in the same run.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = ("mobilenet_v2", "resnet18", "transformer_encoder", "lstm")
ROUNDS = 5
SETS = 4


def _convert(name: str, out: str):
    from converters import convert, zoo

    res = zoo.TEST_RESOLUTION if zoo.kind(name) in ("image", "segmentation") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(zoo.build(name, resolution=res, seed=0), ("mnn", "tflite"),
                      out_dir=os.path.join(out, name), verify=False, exporter="torchscript")
    return rep


def _sets(rep):
    from converters.verify import random_feeds

    specs = [(i["name"], tuple(d if isinstance(d, int) else 1 for d in i["shape"]),
              np.dtype(i["dtype"])) for i in rep.source["inputs"]]
    return [random_feeds(specs, seed) for seed in range(SETS)]


def _options(path: str) -> dict:
    from converters.flow.targets import run_options

    return run_options(path)


def in_process(paths, sets, check: str) -> None:
    import edgert

    for p in paths:
        with edgert.load(p, check=check, **_options(p)) as sess:
            for feeds in sets:
                sess.run(feeds)


def one_child(paths, sets) -> None:
    from converters.flow.isolation import RunJob, run_isolated

    outs = run_isolated([RunJob(os.path.basename(p), p, sets, _options(p)) for p in paths])
    assert all(o.outputs is not None for o in outs), [o.error for o in outs]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            rep = _convert(name, tmp)
            paths = [t.path for t in rep.targets]
            sets = _sets(rep)
            times = {"in-process": [], "probe per file": [], "one child": []}
            for r in range(ROUNDS):
                order = list(times) if r % 2 == 0 else list(reversed(times))
                for way in order:
                    os.environ["EDGERT_CACHE_DIR"] = os.path.join(tmp, f"cache_{name}_{r}")
                    t = time.perf_counter()
                    if way == "one child":
                        one_child(paths, sets)
                    else:
                        in_process(paths, sets, "structure" if way == "in-process"
                                   else "isolated")
                    times[way].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            size = sum(os.path.getsize(p) for p in paths) / 1e6
            rows.append((name, size, med))
    print(f"{'model':22s} {'MB':>6s} {'in-proc s':>10s} {'probe s':>9s} {'child s':>8s} "
          f"{'child/in-proc':>14s} {'child/probe':>12s}")
    for name, size, med in rows:
        print(f"{name:22s} {size:6.2f} {med['in-process']:10.3f} {med['probe per file']:9.3f} "
              f"{med['one child']:8.3f} {med['one child'] / med['in-process']:14.2f} "
              f"{med['one child'] / med['probe per file']:12.2f}")
    print(f"({SETS} input sets x 2 files per model, median of {ROUNDS} alternating rounds)")


if __name__ == "__main__":
    main()
