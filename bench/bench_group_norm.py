"""Why group norm is lowered the way it is: three TFLite forms of the same group
normalization of a channel-last ``[1, S, C]`` tensor, timed on LiteRT (XNNPACK, 1 thread).

* ``per-channel`` (what ``converters/tflite/ops/norm.py`` writes): per-channel means over
  S, averaged within groups in a ``[1, G, C/G]`` view and spread back, so the big SUB/MUL
  broadcast a ``[1, 1, C]`` operand;
* ``grouped-view``: MEAN over axes 1 and 3 of a ``[1, S, G, C/G]`` view, SUB/MUL
  broadcasting ``[1, 1, G, 1]``;
* ``nchw``: TRANSPOSE to ``[1, C, S]``, MEAN over the last axis of ``[1, G, C/G*S]``,
  TRANSPOSE back (what litert-torch's files do).

Prints each form's best median (ms) and its ratio to ``per-channel`` (the baseline,
measured in the same run), and checks the three give the same numbers. The machine is
shared: figures are noisy (a few %).

    python bench/bench_group_norm.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = [(256, 16, 4), (3136, 64, 8), (1024, 256, 32)]     # (S = H*W, C, G)


class _G:
    """A tiny graph builder over the writer's SubgraphBuilder."""

    def __init__(self, s: int, c: int) -> None:
        from converters.tflite.builder import SubgraphBuilder
        self.sg = SubgraphBuilder()
        self.x = self.sg.tensor("x", [1, s, c], np.float32)
        self.sg.inputs.append(self.x)

    def op(self, builtin, ins, shape, opts=None):
        out = self.sg.tensor("t", shape, np.float32)
        self.sg.op(builtin, ins, [out], opts)
        return out

    def const(self, arr):
        return self.sg.const("c", np.asarray(arr))

    def reshape(self, a, shape):
        from converters.tflite.schema import options
        return self.op("RESHAPE", [a, self.const(np.array(shape, np.int32))], shape,
                       options("Reshape", newShape=list(shape)))

    def mean(self, a, axes, shape):
        from converters.tflite.schema import options
        return self.op("MEAN", [a, self.const(np.array(axes, np.int32))], shape,
                       options("Reducer", keepDims=True))

    def binary(self, builtin, a, b, shape):
        from converters.tflite.schema import options
        return self.op(builtin, [a, b], shape, options(builtin.capitalize()))

    def finish(self, y, path: str) -> str:
        from converters.tflite.writer import serialize
        self.sg.outputs.append(y)
        with open(path, "wb") as f:
            f.write(serialize(self.sg, [("x", self.x)], [("y", y)]))
        return path


def per_channel(s, c, g, path):
    b = _G(s, c)
    ones = b.const(np.ones((1, g, c // g), np.float32))

    def stat(v):
        m = b.mean(b.reshape(b.mean(v, [1], [1, 1, c]), [1, g, c // g]), [2], [1, g, 1])
        return b.reshape(b.binary("MUL", m, ones, [1, g, c // g]), [1, 1, c])
    d = b.binary("SUB", b.x, stat(b.x), [1, s, c])
    v = stat(b.binary("MUL", d, d, [1, s, c]))
    r = b.op("RSQRT", [b.binary("ADD", v, b.const(np.float32(1e-5)), [1, 1, c])], [1, 1, c])
    return b.finish(b.binary("MUL", d, r, [1, s, c]), path)


def grouped_view(s, c, g, path):
    b = _G(s, c)
    shape, stat = [1, s, g, c // g], [1, 1, g, 1]
    x = b.reshape(b.x, shape)
    d = b.binary("SUB", x, b.mean(x, [1, 3], stat), shape)
    v = b.mean(b.binary("MUL", d, d, shape), [1, 3], stat)
    r = b.op("RSQRT", [b.binary("ADD", v, b.const(np.float32(1e-5)), stat)], stat)
    return b.finish(b.reshape(b.binary("MUL", d, r, shape), [1, s, c]), path)


def nchw(s, c, g, path):
    b = _G(s, c)
    shape, stat = [1, g, c // g * s], [1, g, 1]
    t = b.op("TRANSPOSE", [b.x, b.const(np.array([0, 2, 1], np.int32))], [1, c, s])
    x = b.reshape(t, shape)
    d = b.binary("SUB", x, b.mean(x, [2], stat), shape)
    v = b.mean(b.binary("MUL", d, d, shape), [2], stat)
    r = b.op("RSQRT", [b.binary("ADD", v, b.const(np.float32(1e-5)), stat)], stat)
    y = b.reshape(b.binary("MUL", d, r, shape), [1, c, s])
    return b.finish(b.op("TRANSPOSE", [y, b.const(np.array([0, 2, 1], np.int32))], [1, s, c]),
                    path)


FORMS = {"per-channel": per_channel, "grouped-view": grouped_view, "nchw": nchw}


def main() -> int:
    import edgert
    from edgert.formatting import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s, c, g in SIZES:
            x = np.random.default_rng(0).standard_normal((1, s, c)).astype(np.float32)
            sessions = {k: edgert.load(f(s, c, g, f"{tmp}/{k}.tflite"), engine="litert",
                                       threads=1, check="structure") for k, f in FORMS.items()}
            outs = {k: sess.run([x])["y"] for k, sess in sessions.items()}
            for k in FORMS:
                np.testing.assert_allclose(outs[k], outs["per-channel"], rtol=1e-4, atol=1e-4)
            best = dict.fromkeys(FORMS, float("inf"))
            for rnd in range(args.rounds):
                order = list(FORMS) if rnd % 2 == 0 else list(reversed(FORMS))
                for k in order:
                    r = sessions[k].benchmark(runs=50, warmup=5, inputs=[x], min_seconds=0.2)
                    best[k] = min(best[k], r.median_ms)
            base = best["per-channel"]
            rows.append([f"S={s} C={c} G={g}"] + [f"{best[k]:.4f} ({best[k] / base:.2f}x)"
                                                   for k in FORMS])
    print_table("group norm forms on LiteRT/XNNPACK, 1 thread: best median ms (ratio to "
                "per-channel)", ["shape"] + list(FORMS), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
