"""``edgert run MODEL --input x.npy|x.npz [--output out.npz]``."""
from __future__ import annotations

HELP = "run a model on inputs from .npy/.npz (or seeded random inputs)"


def add_arguments(p) -> None:
    from edgert.cli.common import add_load_arguments

    add_load_arguments(p)
    p.add_argument("--input", "-i", help=".npy (single-input models) or .npz keyed by input name; "
                                         "default: seeded random inputs")
    p.add_argument("--output", "-o", help="write the outputs to this .npz")
    p.add_argument("--raw", action="store_true", help="keep quantized outputs as integers")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")


def run(args) -> int:
    import numpy as np

    from edgert.cli.common import load_from_args, read_inputs
    from edgert.cli.output import fmt_num, print_json, print_table
    from edgert.tensors import shape_str

    sess = load_from_args(args)
    feeds = (read_inputs(args.input) if args.input
             else sess.random_inputs(args.seed))
    outputs = sess.run(feeds, raw=args.raw)
    if args.output:
        np.savez(args.output, **outputs)
    summary = [{"name": k, "shape": list(v.shape), "dtype": v.dtype.name,
                "min": float(v.min()) if v.size else None,
                "max": float(v.max()) if v.size else None,
                "mean": float(v.astype(np.float64).mean()) if v.size else None,
                "argmax": int(v.reshape(v.shape[0], -1).argmax(-1)[0]) if v.ndim >= 2 and v.size else None}
               for k, v in outputs.items()]
    if args.json:
        print_json({"model": sess.path, "engine": sess.engine_version, "outputs": summary,
                    "saved_to": args.output})
        return 0
    print_table(f"outputs of {sess.path} on {sess.engine_version}",
                ["name", "shape", "dtype", "min", "max", "mean", "argmax[0]"],
                [[s["name"], shape_str(tuple(s["shape"])), s["dtype"], fmt_num(s["min"]),
                  fmt_num(s["max"]), fmt_num(s["mean"]),
                  "-" if s["argmax"] is None else s["argmax"]] for s in summary],
                caption=f"saved to {args.output}" if args.output else None)
    return 0
