"""Benchmark: the fine-tuning of pruned candidates alone (``converters.optimize.trainer``).

The digits net of ``bench/digits_mobilenet.py`` (64x64) is converted once; its optimized
ONNX (the graph every candidate is built from) is pruned the way the search prunes it
(every unit's local channel groups at a keep ratio) and fine-tuned with each recipe
given; it prints the held-out top-1 of the fine-tuned graph (run with torch ops, as
the trainer runs it: the fp32 converted file scores the same), the optimizer steps and
the seconds each took, against the unpruned graph's accuracy measured in the same run.

    python bench/bench_finetune.py [--keeps 0.5,0.75] [--recipes old,new] [--units all]

A recipe is ``name`` (one of RECIPES) or ``key=value,...`` fields of ``Recipe``
(``steps=300,schedule=cosine,distill=0.7,lr=2e-3``); ``--units 0,3`` prunes only
those units (a probe), ``all`` every prunable unit.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: named recipes: the built-in loop before this benchmark, and the default after it
RECIPES = {
    "old": dict(epochs=2, lr=5e-4, schedule="constant", distill=0.0),
    "old8": dict(epochs=8, lr=5e-4, schedule="constant", distill=0.0),
    "new": {},
}


INTS = ("steps", "epochs", "batch", "seed")


def parse_recipe(text: str):
    from converters.optimize.trainer import Recipe

    if text in RECIPES:
        return text, Recipe(**RECIPES[text])
    fields = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        fields[k] = v if k == "schedule" else int(v) if k in INTS else float(v)
    return text, Recipe(**fields)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8, help="epochs training the digits net")
    ap.add_argument("--keeps", default="0.5,0.75")
    ap.add_argument("--units", default="all", help="units to prune: all, or indices 0,3")
    ap.add_argument("--recipes", default="old,new", help="';'-separated recipes")
    ap.add_argument("--out", default="/tmp/bench_finetune")
    args = ap.parse_args()

    import numpy as np
    import onnx
    import onnx_ir as ir
    import torch

    from bench.digits_mobilenet import digits_split, train_digits_net
    from converters.frontends import load_source
    from converters.optimize.finetune import onnx_module
    from converters.optimize.prepare import _units, convert_base
    from converters.optimize.trainer import Trainer
    from converters.pruning import prune_channels

    data = digits_split(args.size)
    net = train_digits_net(data, epochs=args.epochs)
    base = convert_base(net, "tflite", args.out, name="digits",
                        example_inputs=(torch.from_numpy(data.x_test[:1]),))
    units = [u for u in _units(base.onnx) if u.prunable]
    if args.units != "all":
        wanted = {int(v) for v in args.units.split(",")}
        units = [u for u in units if u.index in wanted]

    def accuracy(proto) -> float:
        m = onnx_module(proto).eval()
        with torch.no_grad():
            pred = np.concatenate([m(torch.from_numpy(data.x_test[i:i + 128])).argmax(1)
                                   .numpy() for i in range(0, len(data.x_test), 128)])
        return float(np.mean(pred == data.y_test)) * 100

    ref = accuracy(onnx.load(base.onnx))
    total = sum(u.removable for u in _units(base.onnx))
    print(f"unpruned: {ref:.2f} % on {len(data.y_test)} held-out images; pruning units "
          f"{[u.index for u in units]}; load {os.getloadavg()[0]:.2f}")
    print(f"{'keep':>5s} {'recipe':40s} {'depth':>6s} {'steps':>6s} {'untrained':>9s} "
          f"{'acc %':>7s} {'drop':>6s} {'s':>6s}")
    for keep in (float(k) for k in args.keeps.split(",")):
        model = load_source(base.onnx).model.clone()
        prune_channels(model, keep={f"^{w}$": keep for u in units for w in u.prunable},
                       cost=False)
        pruned = ir.serde.serialize_model(model)
        depth = sum(u.removable for u in units) * (1 - keep) / total
        before = accuracy(pruned)
        for text in args.recipes.split(";"):
            name, recipe = parse_recipe(text)
            trainer = Trainer({"x": data.x_train, "labels": data.y_train}, base.input_names,
                              recipe, teacher=base.onnx)
            trainer.soft_targets()         # once per search: not part of a candidate's time
            proto = onnx.ModelProto()
            proto.CopyFrom(pruned)
            t0 = time.perf_counter()
            trainer(proto, depth=depth)
            secs = time.perf_counter() - t0
            acc = accuracy(proto)
            print(f"{keep:5.2f} {name[:40]:40s} {depth:6.3f} {trainer.steps_for(depth):6d} "
                  f"{before:9.2f} {acc:7.2f} {ref - acc:+6.2f} {secs:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
