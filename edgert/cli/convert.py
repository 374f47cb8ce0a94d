"""``edgert convert MODEL --to mnn[,tflite]``: convert, optimize, verify, report.

MODEL is an ONNX file, a zoo model (``zoo:resnet18``, ``zoo:resnet18@224``), or a
torch model from Python code: ``path/to/file.py:ATTR`` or ``package.module:ATTR``
where ATTR is an ``nn.Module`` or a no-argument factory returning one (or a
``(module, example_inputs)`` pair). Torch models without example inputs take
their shapes from ``--input-shape NAME=1x3x224x224`` (NAME: forward()'s argument).

Exit status: 0 when every target converted and passed verification, 1 when a
result failed verification, 2 on an error (bad input, unsupported op, ...).
"""
from __future__ import annotations

import sys

HELP = "convert a PyTorch or ONNX model to MNN / TFLite, verified against the source"
DESCRIPTION = __doc__.split("\n\n", 1)[1].strip() if __doc__ else HELP


# the library's argument names in its messages -> this command's flags (edgert/cli/__init__.py)
CLI_WORDS = {
    "precision='int8'": "--precision int8", "precision='fp32'": "--precision fp32",
    "precision=\"int8\"": "--precision int8",
    "quant_table=": "--quant-table", "calibration_data=": "--calibration-data",
    "input_shapes=": "--input-shape", "input_values=": "--input",
    "example_inputs=": "--input-shape", "verify_inputs=": "--verify-inputs",
    "sparsity_table=": "--sparsity-table", "backend_options=": "--backend-option",
    "calibration_method=": "--calib-method",
}

MODEL_HELP = ("ONNX file, zoo:NAME[@RES], or a torch model from Python code: file.py:ATTR or "
              "package.module:ATTR (these RUN that file's / module's code, as python would; "
              "give only code you trust)")


def add_arguments(p) -> None:
    from edgert.cli.checks import (float_at_least, int_at_least, precision_list, shape_item,
                                   threshold_item)

    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--to", default="mnn", metavar="TARGETS",
                   help="comma-separated targets: mnn, tflite (default mnn)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: ./edgert_out)")
    p.add_argument("--name", help="base name of the written files (default: from the model)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   type=shape_item,
                   help="fix an input's shape (repeatable); for torch models also the shape "
                        "of the seeded example input")
    p.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help="fix an input that is a setting, not data (repeatable): a number "
                        "(sr=16000) or a .npy file (state=h0.npy); the export, every "
                        "verification set and the calibration use it")
    p.add_argument("--precision", default=["auto"], type=precision_list, metavar="LIST",
                   help="fp32, fp16, int8_weights, int4_weights, int8, or several "
                        "comma-separated (fp32,fp16,int8: one export, one report, files "
                        "m.mnn, m.fp16.mnn, m.int8.mnn); auto (default): int8 for a QDQ "
                        "file, a QAT or PT2E model, or with --quant-table/--calibration-data; "
                        "fp32 otherwise (the report says which and why)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the same names in --out (default: refuse, "
                        "listing them, before any work)")
    p.add_argument("--quant-table", metavar="TABLE",
                   help="quantization table (.json) for --precision int8 (docs/QUANTIZATION.md)")
    p.add_argument("--calibration-data", metavar="DATA",
                   help="int8: .npz/.npy, a folder of them, or a folder of images (see "
                        "--calib-mean/--calib-std); calibrates what the table lacks (or a "
                        "whole table when none is given)")
    p.add_argument("--calib-method", default="minmax",
                   choices=["minmax", "percentile", "entropy"],
                   help="int8: how --calibration-data sets each tensor's range (default "
                        "minmax; as `edgert calibrate --method`)")
    p.add_argument("--io-dtype", default="float", choices=["float", "int8"],
                   help="int8: TFLite model inputs/outputs as int8 tensors (default float)")
    p.add_argument("--io-layout", default="source", choices=["source", "nhwc"],
                   help="TFLite: keep the source's NCHW inputs/outputs (default) or take "
                        "and give NHWC, dropping the boundary transposes")
    p.add_argument("--weight-block", type=int_at_least(0), default=0, metavar="N",
                   help="block-wise weight quantization with blocks of N (int8/int4 weights)")
    p.add_argument("--dynamic-batch", action="store_true", help="make dim 0 of inputs dynamic")
    p.add_argument("--sparsity-table", metavar="FILE",
                   help="sparsity table (edgert prune writes one): channel entries are removed "
                        "from the graph, the others become sparse weights where a kernel runs them")
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"],
                   help="torch.onnx exporter for torch models (default dynamo)")
    p.add_argument("--passes", default=None, metavar="LIST",
                   help="comma-separated passes to run instead of the pipeline, or 'none'")
    p.add_argument("--verify-inputs", metavar="FILE",
                   help=".npy/.npz inputs verification runs besides its seeded sets")
    p.add_argument("--verify-sets", type=int_at_least(0), default=3, metavar="N",
                   help="seeded input sets verification runs (default 3)")
    p.add_argument("--verify-timeout", type=float_at_least(0.001), default=None, metavar="S",
                   help="seconds one converted model may take in the verification child "
                        "(default: 10 s + 0.5 s/MB per set, at most 60 s)")
    p.add_argument("--threshold", action="append", default=[], metavar="KEY=VALUE",
                   type=threshold_item,
                   help="override a verification threshold, e.g. min_cosine=0.9999")
    p.add_argument("--no-verify", action="store_true", help="skip verification")
    p.add_argument("--no-isolated-check", action="store_true",
                   help="accepted for older scripts: verification always runs the converted "
                        "models in a child process")
    p.add_argument("--backend-option", action="append", default=[],
                   metavar="[TARGET.]NAME=VALUE",
                   help="a backend's own option (repeatable), e.g. mnn.mnn_symmetric=all or "
                        "tflite_sparse_hybrid=true (docs/CONVERTERS.md lists them)")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    from edgert.cli.calibrate import add_image_arguments

    add_image_arguments(p)


def run(args) -> int:
    from converters.api import convert
    from edgert.cli.calibrate import calibration_source
    from edgert.cli.progress import Progress
    from edgert.formatting import print_json

    _check_paths(args)
    calibration = calibration_source(args.calibration_data, args)
    for text in calibration_warnings(args, calibration):
        print(f"edgert convert: warning: {text}", file=sys.stderr)
    passes = None
    if args.passes is not None:
        passes = [] if args.passes.strip().lower() == "none" else \
            [p.strip() for p in args.passes.split(",") if p.strip()]
    with Progress.for_args(args) as progress:
        if not args.no_verify:
            progress.stage_labels = dict(Progress.VERIFYING_LABELS)
        report = _convert(args, convert, calibration, passes, progress)
    if args.json:
        print_json(report.to_dict())
    else:
        render(report)
    failed = [t for t in report.targets if t.error]
    for t in failed:
        print(f"edgert convert: error: {t.error}", file=sys.stderr)
    return 2 if failed else 0 if report.ok else 1


def _convert(args, convert, calibration, passes, progress):
    from converters.backends import parse_option_texts
    from converters.flow.context import target_list
    from converters.frontends.values import parse_input_values
    from edgert.cli.checks import shapes_dict

    return convert(
        args.model, targets=args.to, out_dir=args.out or "edgert_out", name=args.name,
        precision=args.precision, input_shapes=shapes_dict(args.input_shape, "--input-shape"),
        input_values=parse_input_values(args.input) or None,
        verify_sets=args.verify_sets, verify_timeout=args.verify_timeout,
        dynamic_batch=args.dynamic_batch, verify=not args.no_verify,
        thresholds=dict(args.threshold) or None, verify_inputs=args.verify_inputs,
        passes=passes, exporter=args.exporter, weight_block_size=args.weight_block,
        quant_table=args.quant_table,
        calibration_data=calibration,
        io_dtype=args.io_dtype, io_layout=args.io_layout,
        sparsity_table=args.sparsity_table,
        backend_options=parse_option_texts(args.backend_option, target_list(args.to))
        if args.backend_option else None,
        overwrite=args.overwrite, calibration_method=args.calib_method,
        on_stage=progress.stage,
        raise_on_error=False)      # one target failing must not hide the others' results


def _check_paths(args) -> None:
    """Files the flags name exist, before the model is exported."""
    import os

    from edgert.errors import InputError

    for flag, path in (("--quant-table", args.quant_table), ("--sparsity-table",
                       args.sparsity_table), ("--calibration-data", args.calibration_data),
                       ("--verify-inputs", args.verify_inputs)):
        if path and not os.path.exists(path):
            raise InputError(f"{flag} {path}: no such file or folder")


_CALIB_DEFAULTS = {"calib_mean": [0.0], "calib_std": [1.0], "calib_pixel_scale": 1.0 / 255.0,
                   "calib_color": "RGB", "calib_resize": "stretch", "calib_method": "minmax"}


def calibration_warnings(args, calibration) -> list:
    """What the user asked that this run will not use, and int8 images fed without
    normalization: said before the work, not found in the numbers after it."""
    given = [f"--{k.replace('_', '-')}" for k, v in _CALIB_DEFAULTS.items()
             if getattr(args, k) != v]
    asked = args.precision
    int8_possible = "int8" in asked or asked == ["auto"]
    out = []
    if not int8_possible:
        ignored = [f for f, v in (("--calibration-data", args.calibration_data),
                                  ("--quant-table", args.quant_table)) if v] + given
        if ignored:
            out.append(f"{', '.join(ignored)} ignored: only --precision int8 calibrates "
                       f"(asked: {','.join(asked)})")
        return out
    if args.calibration_data is None:
        images = [f for f in given if f != "--calib-method"]
        if images:
            out.append(f"{', '.join(images)} ignored: they describe --calibration-data "
                       f"images, and none were given")
        if "--calib-method" in given and args.quant_table is None:
            out.append("--calib-method ignored: no --calibration-data to calibrate with")
        return out
    from quant_tables.calibration_data import ImageFolder

    if isinstance(calibration, ImageFolder) and not {"--calib-mean", "--calib-std"} & set(given):
        out.append("calibrating on images scaled to 0..1 with no normalization: a model "
                   "trained on normalized inputs needs --calib-mean/--calib-std (ImageNet: "
                   "--calib-mean 0.485 0.456 0.406 --calib-std 0.229 0.224 0.225), or int8 "
                   "ranges are measured on inputs the model never sees")
    return out


def render(report) -> None:
    """Tables for people: passes, written files, verification."""
    from converters.verify import TABLE_COLUMNS
    from edgert.formatting import fmt_num, print_table

    src = report.source
    print(f"{report.name}: {src['kind']} source"
          + (f" via the {src['exporter']} exporter" if src.get("exporter") else "")
          + f"; {report.passes.nodes_before} -> {report.passes.nodes_after} nodes; "
          f"{report.seconds:.1f} s")
    if getattr(report, "precision", None):
        from edgert.cli import in_cli_words

        print(f"  precision: {in_cli_words(report.precision['why'], run)}")
    for name, value in (src.get("input_values") or {}).items():
        print(f"  input {name} fixed at {value}")
    for note in src.get("notes", []):
        print(f"  note: {note}")
    rows = []
    for p in report.passes.passes:
        delta = ", ".join(f"{k} {v:+d}" for k, v in p.op_delta().items())
        refused = "; ".join(f"{r.node}: {r.reason}" for r in p.refusals[:2])
        if len(p.refusals) > 2:
            refused += f"; +{len(p.refusals) - 2} more"
        rows.append([p.name, p.changes, delta or "-", refused or "-"])
    print_table("passes", ["pass", "changes", "op count change", "refused"], rows)
    import os

    rows = [["onnx", "fp32", os.path.basename(report.optimized_path),
             fmt_num(report.optimized_size / 1e6), f"{report.passes.nodes_after} nodes", "ok"]]
    for t in report.targets:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(t.op_counts.items(), key=lambda kv: -kv[1])[:4])
        rows.append([t.target, t.precision, os.path.basename(t.path or "-"),
                     fmt_num(t.size_bytes / 1e6), ops or "-",
                     f"FAILED: {t.error_type} (below)" if t.error else "ok"])
    print_table(f"files in {report.out_dir}", ["target", "precision", "file", "MB", "ops",
                                                "status"], rows)
    render_sparsity(report)
    vrows = report.verification_rows()
    if vrows:
        v = next(t.verification for t in report.targets if t.verification)
        print_table("verification", TABLE_COLUMNS, vrows,
                    caption=f"reference: {v.reference}; inputs: {v.inputs}")
    from edgert.cli.progress import Progress, exporter_hint, timing_line

    labels = Progress.VERIFYING_LABELS if report.verified else {}
    print(timing_line([(labels.get(k, k), v) for k, v in report.stages.items()],
                      report.seconds))
    hint = exporter_hint(report)
    if hint:
        print(hint)
    print(f"report: {report.report_path}")
    failed = [t.target for t in report.targets if t.error]
    if failed:
        print(f"conversion FAILED for {', '.join(failed)} (the error follows)")
    elif not report.verified:
        print("not verified (--no-verify): the written files were not run")
    else:
        print("verification " + report.verdict)
    unjudged = [f"{t.target} {t.precision} {o.name}" for t in report.targets
                if t.verification for o in t.verification.outputs if o.top1_unjudged]
    if unjudged:
        print(f"top-1 NOT JUDGED for {', '.join(unjudged)}: on these inputs every row's "
              f"lead is within the precision's noise; give real inputs (--verify-inputs, "
              f"or --calibration-data, whose held-out samples are verified on)")


def render_sparsity(report) -> None:
    """Channel pruning effects and, per target, which sparse layers run sparse and why."""
    from edgert.formatting import print_table

    if getattr(report, "pruning", None) is not None:
        print(report.pruning.summary())
    rows = []
    for t in report.targets:
        for r in (t.details or {}).get("sparsity", {}).get("layers", []):
            rows.append([t.target, r["weight"], r["kind"], f"{r['zeros']:.0%}", r["runs"],
                         r["why"]])
    if rows:
        print_table("sparse weights", ["target", "weight", "kind", "zeros", "runs", "why"], rows)
