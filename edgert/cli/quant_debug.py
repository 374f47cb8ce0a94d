"""``edgert quant-debug MODEL.onnx --table T.json``: which layers lose accuracy in int8?

Compares every tensor of the float ONNX model with the int8 version (the table's
QDQ simulation, or the real .tflite / .mnn made from it) on one input, and names
the layers that add the most error (see converters/quant_debug.py).
"""
from __future__ import annotations

HELP = "per-layer int8 error: compare each int8 layer with the float one, name the worst"


def add_arguments(p) -> None:
    from edgert.cli.checks import int_at_least

    p.add_argument("model", help="the float ONNX model the table is for (e.g. the "
                                 "<name>.optimized.onnx that convert writes)")
    p.add_argument("--table", required=True, help="quantization table (.json)")
    p.add_argument("--target", default="sim", choices=["sim", "tflite", "mnn"],
                   help="int8 side: the table's QDQ simulation (default) or the real model")
    p.add_argument("--data", help="input: .npy/.npz (first sample used); default: seeded random")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument("--top", type=int_at_least(1), default=10, help="how many worst layers to name")
    p.add_argument("--all", action="store_true", help="print every layer, in graph order")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from converters.quant_debug import debug_int8
    from edgert.formatting import fmt_num, print_json, print_table

    from edgert.cli.progress import Progress

    with Progress.for_args(args) as progress:
        with progress.step(f"comparing every int8 layer with float ({args.target})"):
            rep = debug_int8(args.model, args.table, data=args.data, target=args.target,
                             seed=args.seed)
    if args.json:
        print_json(rep.to_dict(args.top))
        return 0
    rows = rep.layers if args.all else rep.worst(args.top)
    print_table(f"int8 ({args.target}) against float: "
                + ("every layer" if args.all else f"the {len(rows)} layers adding most error"),
                ["tensor", "op", "SNR dB", "cosine", "max err (steps)", "dB lost here"],
                [[r.tensor, r.op, fmt_num(r.snr_db), f"{r.cosine:.5f}",
                  fmt_num(r.max_err_steps), fmt_num(r.db_lost)] for r in rows])
    if rep.layers:
        last = rep.layers[-1]
        print(f"output {last.tensor}: cosine {last.cosine:.5f}, SNR {fmt_num(last.snr_db)} dB")
    if rep.missing:
        print(f"{len(rep.missing)} tensor(s) have no int8 counterpart (fused into the layer "
              f"before, or not kept by the engine)")
    print(progress.breakdown())
    return 0
