"""``edgert calibrate MODEL --data D --method M -o table.json``: post-training calibration.

Runs the float ONNX model over the user's calibration arrays and writes a
quantization table (int8 activations by min/max, percentile or entropy;
per-channel symmetric int8 weights). With ``--table`` it fills only what a
partial table (for example from QAT) lacks.
"""
from __future__ import annotations

HELP = "make a quantization table from calibration data (min/max, percentile, entropy)"


def add_image_arguments(p) -> None:
    """How a directory of images becomes calibration input (``quant_tables.ImageFolder``)."""
    from edgert.cli.common import add_preprocess_arguments

    add_preprocess_arguments(
        p.add_argument_group("calibration images (a directory of JPEG/PNG/... files)"),
        prefix="calib-")


def calibration_source(data, args):
    """``data`` as given, or an ImageFolder when it is a directory of images."""
    import os

    if data is None or not os.path.isdir(data):
        return data
    from quant_tables.calibration_data import ImageFolder, image_files

    if not image_files(data) or any(f.endswith((".npy", ".npz")) for f in os.listdir(data)):
        return data
    from edgert.cli.common import preprocess_options

    return ImageFolder(data, **preprocess_options(args, prefix="calib-"))


def add_arguments(p) -> None:
    from edgert.cli.checks import float_at_least, int_at_least

    p.add_argument("model", help="float ONNX model")
    p.add_argument("--data", required=True,
                   help=".npz (arrays by input name, first axis = samples), .npy (one input), "
                        "a directory of such files (one feed each), or a directory of images")
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"],
                   help="range estimator (default minmax)")
    p.add_argument("--percentile", type=float_at_least(50, 100), default=99.99,
                   help="percentile kept by --method percentile (default 99.99)")
    p.add_argument("--table", help="partial table: calibrate only the tensors it lacks")
    p.add_argument("--symmetric-activations", action="store_true",
                   help="zero point 0 for activations (default: asymmetric int8)")
    p.add_argument("--per-tensor-weights", action="store_true",
                   help="one scale per weight (default: one per output channel)")
    p.add_argument("--batch", type=int_at_least(1), default=16,
                   help="samples per run when the model's batch dimension is dynamic")
    p.add_argument("--limit", type=int_at_least(1), help="use at most this many batches")
    p.add_argument("-o", "--output", required=True, help="table to write (.json)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    from edgert.cli.common import add_overwrite_argument

    add_overwrite_argument(p)
    add_image_arguments(p)


def run(args) -> int:
    from edgert.formatting import print_json
    from quant_tables import QuantTable
    from quant_tables.producers.calibrate import calibrate
    from edgert.cli.common import output_file

    output_file(args.output, args)
    from edgert.cli.progress import Progress

    with Progress.for_args(args) as progress:
        partial = QuantTable.load(args.table) if args.table else None
        with progress.step(f"calibrating ({args.method})"):
            table = calibrate(args.model, calibration_source(args.data, args), args.method,
                              percentile=args.percentile, table=partial,
                              symmetric_activations=args.symmetric_activations,
                              per_channel=not args.per_tensor_weights, batch=args.batch,
                              limit=args.limit, source_name=args.model)
        with progress.step("writing"):
            table.save(args.output)
    summary = {"output": args.output, **table.summary()}
    if partial is not None:
        summary["filled"] = (len(table.activations) - len(partial.activations)
                             + len(table.weights) - len(partial.weights))
    if args.json:
        print_json(summary)
        return 0
    extra = f", {summary['filled']} filled into {args.table}" if partial is not None else ""
    print(f"wrote {args.output}: {summary['activations']} activations, {summary['weights']} "
          f"weights ({table.provenance.method}, "
          f"{table.provenance.details.get('samples', 0)} samples{extra})")
    print(progress.breakdown())
    return 0
