"""``edgert prune MODEL --pattern 1x4 --sparsity 0.8``: magnitude pruning and channel pruning.

MODEL is what ``edgert convert`` takes (ONNX file, zoo:NAME[@RES], file.py:ATTR,
package.module:ATTR). Patterns: unstructured; 1x4 (4 output channels x 1 input,
MNN's SIMD_OC blocks); ic4 / ic16 (1 output x 4 / 16 inputs, TFLite's sparse
fully-connected blocks); OxI (any block); N:M (e.g. 2:4); channel (remove whole
output channels and everything tied to them: the model gets smaller).

Writes <name>.sparsity.json (the table) and <name>.pruned.onnx, prints the
sparsity reached per layer (or params and FLOPs before and after for channels),
and with --to converts with the table, verified against the masked source, as
<name>.pruned.mnn / <name>.pruned.tflite (never the unpruned files' names). Files
that exist are refused before any work unless --overwrite.
Exit status as for convert: 0 ok, 1 verification failed, 2 error.
"""
from __future__ import annotations

HELP = "prune a model (unstructured, blocks, N:M, channels) and write its sparsity table"
DESCRIPTION = __doc__.split("\n\n", 1)[1].strip() if __doc__ else HELP


def add_arguments(p) -> None:
    from edgert.cli.checks import float_at_least, int_at_least, precision_list, shape_item
    from edgert.cli.convert import MODEL_HELP

    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--pattern", default="unstructured",
                   help="unstructured, 1x4, ic4, ic16, OxI, N:M (2:4) or channel")
    p.add_argument("--sparsity", type=float_at_least(0, 0.999), default=0.5,
                   help="fraction to remove (channels: of each layer's channels); default 0.5")
    p.add_argument("--layer", action="append", default=[], metavar="REGEX=FRACTION",
                   help="a per-layer target (repeatable; first match wins, then --sparsity)")
    p.add_argument("--global", dest="scope", action="store_const", const="global",
                   default="layer", help="rank all layers together (one global target)")
    p.add_argument("--kinds", default="conv1x1,conv,fc",
                   help="layer kinds to prune: conv1x1, conv, depthwise, fc (default "
                        "conv1x1,conv,fc)")
    p.add_argument("--include", metavar="REGEX", help="only weights whose name matches")
    p.add_argument("--exclude", metavar="REGEX", help="skip weights whose name matches")
    p.add_argument("--min-params", type=int_at_least(0), default=0, help="skip smaller weights")
    p.add_argument("--to", default=None, metavar="TARGETS",
                   help="also convert: mnn, tflite or mnn,tflite")
    p.add_argument("--precision", default=None, type=precision_list, metavar="LIST",
                   help="with --to: the precision(s) to convert at, as `edgert convert "
                        "--precision` (e.g. fp32,fp16); default auto")
    p.add_argument("--out", default="edgert_out", metavar="DIR", help="output folder")
    p.add_argument("--name", help="base name of the written files")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   type=shape_item)
    p.add_argument("--json", action="store_true", help="print the JSON report")
    from edgert.cli.common import add_overwrite_argument

    add_overwrite_argument(p)


def _targets(args):
    from edgert.errors import InputError

    if not args.layer:
        return args.sparsity
    out = {}
    for item in args.layer:
        key, sep, value = item.rpartition("=")
        try:
            out[key] = float(value)
        except ValueError:
            raise InputError(f"bad --layer {item!r}: write REGEX=FRACTION") from None
        if not sep or not key:
            raise InputError(f"bad --layer {item!r}: write REGEX=FRACTION")
    out.setdefault(".*", args.sparsity)
    return out


def _convert_options(args, progress):
    from edgert.errors import InputError

    if not args.to:
        if args.precision is not None:
            raise InputError("--precision is for the conversion: give --to as well")
        return None
    options = {"on_stage": progress.stage}
    progress.stage_labels = dict(progress.VERIFYING_LABELS)    # its conversion verifies
    if args.precision is not None:
        options["precision"] = args.precision
    return options


def run(args) -> int:
    from edgert.cli.checks import shapes_dict
    from edgert.cli.progress import Progress
    from converters.prune_model import prune_model
    from edgert.formatting import print_json

    targets = _targets(args)
    with Progress.for_args(args) as progress:
        progress.start("pruning")
        res = prune_model(args.model, pattern=args.pattern, sparsity=targets,
                          scope=args.scope, kinds=[k.strip() for k in args.kinds.split(",") if k],
                          include=args.include, exclude=args.exclude,
                          min_params=args.min_params, out_dir=args.out, name=args.name,
                          targets=args.to,
                          input_shapes=shapes_dict(args.input_shape, "--input-shape"),
                          overwrite=args.overwrite, on_pruned=progress.done,
                          convert_options=_convert_options(args, progress))
        progress.done()
    if args.json:
        print_json(res.to_dict())
    else:
        render(res)
        if res.conversion is None:
            print(progress.breakdown())
    return 0 if res.conversion is None or res.conversion.ok else 1


def render(res) -> None:
    from edgert.formatting import print_table

    if res.layers is not None:
        print_table(f"{res.name}: {res.pattern} magnitude pruning ({res.layers.scope} targets)",
                    ["weight", "kind", "shape", "pattern", "target", "reached", "zeros"],
                    res.layers.rows(),
                    caption=f"{len(res.layers.layers)} layers, "
                            f"{res.layers.overall_zeros:.1%} of their weights are zero")
    if res.channels is not None:
        rows = [[l["weight"], l["op"], l["before"], l["after"]] for l in res.channels.layers
                if l["after"] < l["before"]]
        print_table(f"{res.name}: channel pruning", ["weight", "op", "channels", "kept"], rows)
        print(res.channels.summary())
    for note in res.notes:
        print(f"note: {note}")
    print(f"table: {res.table_path}\npruned ONNX: {res.pruned_path}")
    if res.conversion is not None:
        from edgert.cli.convert import render as render_conversion

        render_conversion(res.conversion)
