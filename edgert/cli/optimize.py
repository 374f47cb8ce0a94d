"""``edgert optimize MODEL --device NAME --target tflite|mnn --eval EVAL GOAL``.

Searches per-layer precision (fp32 / int8 / int8 with the worst layers kept
float), channel pruning and block sparsity (MNN) for a goal measured on the
device: ``--latency-ms X`` (at most X ms there), ``--speedup 2x`` (at most the
fp32 model's latency / 2), ``--max-drop P`` (lose at most P accuracy points);
a budget and a drop limit may go together. EVAL is an .npz of inputs and labels
(``x``/model input names, ``labels``), a folder of images in one sub-folder per
class, or ``file.py:function`` (given an ``edgert.Session``, returns the
accuracy); ``--agreement`` scores top-1 agreement with the fp32 model instead of
labels. The accuracy is the converted file's, run by edgert's runtime.
``--train DATA`` (an .npz of training inputs and labels, or file.py:function)
fine-tunes every channel-pruned candidate, distilled from the unpruned model, for
``--train-steps`` optimizer steps at full pruning depth (fewer for a shallower
pruning) or ``--train-epochs`` passes over the data; without it pruning is
calibration-only.

Latency comes from the farm: each batch of candidates is one farm run on
``--device`` (``host`` needs no inventory), stored in ``--db`` with the search
itself, so ``--resume SEARCH_ID`` continues a search whose device dropped and
``--compare SEARCH_ID`` draws another search's front beside this one.
Writes into ``--out``: ``<name>.optimized.<ext>`` and its tables, ``report.md``,
``report.json`` and ``front.png``. docs/OPTIMIZE.md explains the search.

Exit status: 0 when the goal is met, 1 when it cannot be (the closest point is
written and named), 2 on an error; 3 when the device dropped (resume later).
"""
from __future__ import annotations

import sys
import time

HELP = "compress a model to a latency / accuracy budget measured on a device"
DESCRIPTION = __doc__.split("\n\n", 1)[1].strip() if __doc__ else HELP


#: converters.optimize.trainer's DEFAULT_STEPS, FULL_DEPTH and MIN_SHARE, written out:
#: the parser is built on devices that have only the runtime (tests/optimize check them)
TRAIN_STEPS_HELP = ("optimizer steps of fine-tuning for a pruning that removes 0.5 of the "
                    "prunable channels or more; shallower ones get their share, at least 0.5 "
                    "of it (default 300)")


def _floats(text: str):
    return tuple(float(t) for t in text.split(",") if t.strip())


def add_arguments(p) -> None:
    from edgert.cli.calibrate import add_image_arguments
    from edgert.cli.checks import int_at_least
    from edgert.cli.common import add_preprocess_arguments

    p.add_argument("model", nargs="?", help="ONNX file, zoo:NAME[@RES], file.py:ATTR or "
                   "package.module:ATTR (not needed with --list)")
    p.add_argument("--device", default="host", help="farm device to measure on (default host)")
    p.add_argument("--target", default="tflite", choices=["tflite", "mnn"])
    p.add_argument("--eval", dest="eval_spec", metavar="EVAL",
                   help=".npz of inputs and labels, a folder of class sub-folders, or "
                        "file.py:function")
    p.add_argument("--agreement", action="store_true",
                   help="score top-1 agreement with the fp32 model on EVAL's inputs")
    p.add_argument("--eval-limit", type=int, metavar="N", help="use the first N samples of EVAL")
    g = p.add_argument_group("goal (a budget, a drop limit, or both)")
    g.add_argument("--latency-ms", type=float, metavar="X", help="at most X ms on the device")
    g.add_argument("--speedup", metavar="FACTOR", help="at least this much faster than fp32 "
                   "(e.g. 2x)")
    g.add_argument("--max-drop", type=float, metavar="POINTS",
                   help="lose at most this many accuracy points")
    p.add_argument("--search-minutes", type=float, default=15.0,
                   help="time limit of the search (default 15)")
    s = p.add_argument_group("search space")
    s.add_argument("--precisions", default="fp32,int8,int8-mixed",
                   help="per-layer precisions to mix (default fp32,int8,int8-mixed)")
    s.add_argument("--keep", type=_floats, default=(1.0, 0.75, 0.5), metavar="RATIOS",
                   help="channel keep ratios, comma separated (default 1,0.75,0.5)")
    s.add_argument("--sparsity", type=_floats, default=(0.0,), metavar="RATIOS",
                   help="1x4 block sparsities of 1x1 convolutions (MNN only; default none)")
    m = p.add_argument_group("measurement")
    m.add_argument("--statistic", default="min", choices=["min", "p10", "median"],
                   help="latency figure the search uses (default min: see docs/OPTIMIZE.md)")
    m.add_argument("--runs", type=int, default=50, help="timed runs per candidate (default 50)")
    m.add_argument("--threads", type=int, default=1, help="threads on the device (default 1)")
    m.add_argument("--inventory", help="devices.toml (default: $EDGERT_DEVICES, ./devices.toml)")
    m.add_argument("--db", default="farm_results.sqlite",
                   help="farm results store, where the search is kept too")
    p.add_argument("--out", metavar="DIR", help="output folder (default ./edgert_optimize)")
    p.add_argument("--name", help="base name of the written files (default: from the model)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="fix an input's shape (repeatable); torch models: the example input")
    p.add_argument("--calibration-data", metavar="DATA",
                   help="int8 calibration (.npz/.npy/folder; default: EVAL's first inputs)")
    p.add_argument("--train", metavar="DATA",
                   help="fine-tune every channel-pruned or block-sparse candidate: an .npz of "
                        "training inputs and labels, or file.py:function(module, ctx) running "
                        "its own loop (ctx['teacher']: the unpruned model's outputs)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--train-steps", type=int_at_least(1), metavar="N",
                        help=TRAIN_STEPS_HELP)
    budget.add_argument("--train-epochs", type=int_at_least(1), metavar="E",
                        help="instead: E passes over the training data for every pruning")
    p.add_argument("--resume", metavar="SEARCH_ID", help="continue a stopped search")
    p.add_argument("--compare", metavar="SEARCH_ID", help="draw another search's front too")
    p.add_argument("--list", action="store_true", help="list the searches in --db and exit")
    p.add_argument("--progress", choices=["auto", "plain", "none"], default="auto")
    p.add_argument("--json", action="store_true", help="print the JSON result")
    add_preprocess_arguments(p.add_argument_group("EVAL images (a folder of class folders)"))
    add_image_arguments(p)


def run(args) -> int:
    from edgert.errors import InputError

    if args.list:
        return _list(args.db)
    if not args.model or not args.eval_spec:
        raise InputError("give MODEL and --eval EVAL (or --list)")
    if (args.train_steps is not None or args.train_epochs is not None) and not args.train:
        raise InputError("--train-steps/--train-epochs fine-tune with --train DATA: give it")
    from converters.frontends.shapes import parse_input_shapes
    from converters.optimize import Goal, SpaceSpec, optimize, parse_speedup
    from converters.optimize.search import SearchStopped
    from device_farm.latency_meter import FarmMeter
    from device_farm.search_store import FarmSearchLog, load_search
    from edgert.cli.calibrate import calibration_source
    from edgert.cli.common import preprocess_options

    goal = Goal(latency_ms=args.latency_ms,
                speedup=parse_speedup(args.speedup) if args.speedup else None,
                max_drop=args.max_drop)
    space = SpaceSpec(tuple(t.strip() for t in args.precisions.split(",") if t.strip()),
                      tuple(args.keep), tuple(args.sparsity))
    meter = FarmMeter(args.device, db=args.db, inventory=args.inventory, runs=args.runs,
                      threads=args.threads)
    compare = load_search(args.db, args.compare) if args.compare else None
    log = FarmSearchLog(args.db, args.resume)
    show = _progress(args.progress, args.json)
    try:
        res = optimize(
            args.model, evaluate=args.eval_spec, goal=goal, target=args.target,
            out_dir=args.out or "edgert_optimize", device=args.device, meter=meter, log=log,
            space=space, calibration_data=calibration_source(args.calibration_data, args),
            statistic=args.statistic, search_minutes=args.search_minutes,
            input_shapes=parse_input_shapes(args.input_shape) or None, name=args.name,
            resume=args.resume, on_event=show, compare=compare, train=args.train,
            train_steps=args.train_steps, train_epochs=args.train_epochs,
            context=[f"device {args.device}: {meter.description}"],
            eval_options={"preprocess": preprocess_options(args), "agreement": args.agreement,
                          "limit": args.eval_limit, "threads": args.threads})
    except SearchStopped as exc:
        print(f"edgert optimize: {exc}\n  resume: edgert optimize ... --resume {log.search_id}"
              f" --db {args.db}", file=sys.stderr)
        return 3
    if args.json:
        from edgert.formatting import print_json

        print_json({"search_id": res.search_id, "met": res.met, "message": res.message,
                    "chosen": res.chosen, "files": res.files, "report": res.report_path,
                    "predictions": res.predictions})
    else:
        _render(res)
    return 0 if res.met else 1


def _render(res) -> None:
    from edgert.formatting import fmt_num, print_table

    rows = [[r["role"], r["label"][:56], f"{r['accuracy'] * 100:.2f}", fmt_num(r["ms"]),
             f"{r['speedup']:.2f}x" if r["speedup"] else "-",
             fmt_num(r["predicted_ms"]) if r["predicted_ms"] is not None else "-",
             "yes" if r["pareto"] else ""]
            for r in res.rows if r["role"] != "probe"]
    print_table(f"search {res.search_id}: measured points",
                ["role", "candidate", "acc %", "ms", "speed-up", "predicted ms", "front"], rows)
    from converters.optimize.report import hit_rates

    for line in hit_rates(res.predictions):
        print(f"latency prediction, {line}")
    print(("goal met: " if res.met else "goal NOT met: ") + res.message)
    for k, v in res.files.items():
        print(f"{k}: {v}")
    print(f"report: {res.report_path}")


def _progress(mode: str, quiet: bool):
    """Plain progress lines on stderr: phase, candidates tried, best so far, time left."""
    if mode == "none" or (quiet and mode == "auto"):
        return None
    last = [0.0]

    def show(e) -> None:
        now = time.monotonic()
        if e["kind"] not in ("phase", "start", "batch_measured") or (
                e["kind"] == "batch_measured" and now - last[0] < 2.0):
            return
        last[0] = now
        best = e.get("best")
        text = "-" if not best else (f"{best['label'][:48]} ({best['ms']:.3f} ms, "
                                     f"{best['accuracy'] * 100:.2f}%)")
        step = f" {e['done']}/{e['total']}" if "done" in e else (
            f" ({e['total']} candidates)" if "total" in e else "")
        print(f"[{e['elapsed_s']:6.0f} s] {e.get('phase', e['kind'])}{step}: tried {e['tried']}, "
              f"best {text}, {e['left_s']:.0f} s left", file=sys.stderr, flush=True)
    return show


def _list(db: str) -> int:
    import os

    from edgert.errors import InputError
    from edgert.formatting import print_table

    if not os.path.exists(db):
        raise InputError(f"{db}: no farm store")
    from device_farm.search_store import list_searches

    rows = [[r["search_id"], r["status"], r["model_name"], r["target"], r["device"], r["goal"],
             r["updated_at"]] for r in list_searches(db)]
    print_table(f"searches in {db}", ["search", "status", "model", "target", "device", "goal",
                                      "updated"], rows)
    return 0
