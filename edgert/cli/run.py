"""``edgert run MODEL --input x.npy|x.npz [--output out.npz]``."""
from __future__ import annotations

HELP = "run a model on inputs from .npy/.npz (or seeded random inputs)"


def add_arguments(p) -> None:
    from edgert.cli.checks import float_at_least, int_at_least
    from edgert.cli.common import add_load_arguments, add_preprocess_arguments

    add_load_arguments(p)
    p.add_argument("--input", "-i", help=".npy (single-input models), .npz keyed by input name, "
                                         "or an image (JPEG, PNG, ...) for an image input; "
                                         "default: seeded random inputs")
    p.add_argument("--output", "-o", help="write the outputs to this .npz")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--raw", action="store_true", help="keep quantized outputs as integers")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--timeout", type=float_at_least(0.001), metavar="SECONDS",
                   help="stop a run that takes longer: the run happens in a worker process, "
                        "which is killed at the deadline (an error, exit 2)")
    g = p.add_argument_group("image input (--input photo.jpg)")
    add_preprocess_arguments(g)
    g.add_argument("--labels", help="class names, one per line: top-k with names")
    g.add_argument("--top-k", type=int_at_least(1), default=5, help="classes to list (default 5)")



def _image_feeds(sess, args):
    """The image preprocessed for the model's single image input (edgert.preprocess)."""
    from edgert.cli.common import preprocess_options
    from edgert.errors import InputError
    from edgert.preprocess import preprocess, read_image, spec_for_input

    if len(sess.inputs) != 1:
        raise InputError(f"an image feeds a model with one input; this one has "
                         f"{[i.name for i in sess.inputs]} (give a .npz)")
    info = sess.inputs[0]
    spec = spec_for_input(list(info.shape), input=info.name, **preprocess_options(args))
    return {info.name: preprocess(read_image(args.input), spec)}


def _top_k(outputs, args):
    """(output name, [(class, score, label)]) for the first classifier-shaped output."""
    import numpy as np

    from edgert.postprocess import label_of, top_k_classes

    labels = None
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    for name, v in outputs.items():
        if v.ndim == 2 and v.shape[0] == 1 and v.shape[1] > 1 and \
                np.issubdtype(v.dtype, np.floating):
            return name, [(i, p, label_of(i, labels)) for i, p in top_k_classes(v[0], args.top_k)]
    return None


def run(args) -> int:
    import os

    import numpy as np

    from edgert.cli.common import load_from_args, output_file, read_inputs

    if args.output:                     # checked before the model is loaded
        if not args.output.endswith(".npz"):
            args.output += ".npz"       # as np.savez names it
        output_file(args.output, args)
    from edgert.formatting import fmt_num, print_json, print_table
    from edgert.tensors import shape_str

    sess = load_from_args(args)
    from edgert.preprocess import IMAGE_EXTENSIONS

    is_image = bool(args.input) and args.input.lower().endswith(IMAGE_EXTENSIONS)
    feeds = (_image_feeds(sess, args) if is_image else read_inputs(args.input) if args.input
             else sess.random_inputs(args.seed))
    outputs = sess.run(feeds, raw=args.raw, timeout=args.timeout)
    if args.output:
        from edgert.outputs import OutputFolder

        folder = OutputFolder(os.path.dirname(os.path.abspath(args.output)), overwrite=True)
        with folder, folder.writing(os.path.basename(args.output)) as staged:
            with open(staged, "wb") as f:      # a file object: savez adds no extension
                np.savez(f, **outputs)
    summary = [{"name": k, "shape": list(v.shape), "dtype": v.dtype.name,
                "min": float(v.min()) if v.size else None,
                "max": float(v.max()) if v.size else None,
                "mean": float(v.astype(np.float64).mean()) if v.size else None,
                "argmax": int(v.reshape(v.shape[0], -1).argmax(-1)[0]) if v.ndim >= 2 and v.size else None}
               for k, v in outputs.items()]
    ranked = _top_k(outputs, args) if is_image or args.labels else None
    if args.json:
        doc = {"model": sess.path, "engine": sess.engine_version, "outputs": summary,
               "saved_to": args.output}
        if ranked:
            doc["top_k"] = {"output": ranked[0], "classes": [
                {"index": i, "score": float(p), "label": lab} for i, p, lab in ranked[1]]}
        print_json(doc)
        return 0
    print_table(f"outputs of {sess.path} on {sess.engine_version}",
                ["name", "shape", "dtype", "min", "max", "mean", "argmax[0]"],
                [[s["name"], shape_str(tuple(s["shape"])), s["dtype"], fmt_num(s["min"]),
                  fmt_num(s["max"]), fmt_num(s["mean"]),
                  "-" if s["argmax"] is None else s["argmax"]] for s in summary],
                caption=f"saved to {args.output}" if args.output else None)
    if ranked:
        print_table(f"top {len(ranked[1])} of {ranked[0]}", ["rank", "class", "score", "label"],
                    [[r + 1, i, f"{p:.4f}", lab] for r, (i, p, lab) in enumerate(ranked[1])])
    return 0
