"""``edgert roofline MODEL``: where each layer sits against a device's roofs.

Analyses the ONNX graph (``converters.analysis``), places it against the roofs
of ``--device`` (``host`` measured now, a name from devices.json, or a JSON from
``edgert roofs --json``), and, with a measured latency, says how close the
engine comes to the bound. On the host the latency is measured right away when
none is given and the model runs here.
"""
from __future__ import annotations

HELP = "roofline analysis: per-layer memory/compute bound, model bound, efficiency"


def add_arguments(p) -> None:
    from edgert.cli.checks import int_at_least, shape_item

    p.add_argument("model", help="ONNX model (for a .tflite/.mnn, pass the ONNX it came from "
                   "and --latency-from a bench of the converted file)")
    p.add_argument("--device", default="host",
                   help="host (measure now), a device name (edgert roofs --devices), "
                        "or a roofs JSON from `edgert roofs --json`")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="storage/compute precision the roofs and bytes are taken at")
    p.add_argument("--latency-from", metavar="RESULTS",
                   help="measured latency from `edgert bench --json` output")
    p.add_argument("--latency-ms", type=float, help="measured latency in ms")
    p.add_argument("--no-measure", action="store_true",
                   help="on the host, do not measure the latency when none is given")
    p.add_argument("--engine", help="engine for the host measurement / to pick from RESULTS")
    p.add_argument("--threads", type=int_at_least(1), help="threads for the host measurement")
    p.add_argument("--shape", "--input-shape", action="append", default=[],
                   metavar="NAME=1x3x224x224", type=shape_item,
                   help="fix a dynamic input's shape (repeatable; other dynamic dims are 1); "
                        "NAME=1,3,224,224 is read the same")
    p.add_argument("--no-fuse", action="store_true",
                   help="keep activations/BatchNorm as separate layers (default: fused "
                        "into the conv/matmul before them, as engines run them)")
    p.add_argument("--plot", metavar="OUT.png",
                   help="write the roofline plot (PNG and SVG beside it)")
    p.add_argument("--top", type=int_at_least(0), default=12,
                   help="layers in the table, by share of the bound time (0: all)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _shapes(items):
    from edgert.cli.checks import shapes_dict
    from edgert.errors import InputError

    shapes = shapes_dict(items, "--shape")
    for name, dims in shapes.items():
        if not all(isinstance(d, int) for d in dims):
            raise InputError(f"--shape {name}: give every dim as a number (roofline needs sizes)")
    return {name: list(dims) for name, dims in shapes.items()}


def run(args) -> int:
    import os

    from converters.analysis import analyze
    from converters.roofline.devices import get_roofs
    from converters.roofline.latency import latency_from, measure_latency
    from converters.roofline.model import roofline
    from edgert.errors import EdgertError, InputError
    from edgert.model_file import detect_format

    fmt = detect_format(args.model) if os.path.exists(args.model) else "onnx"
    if fmt != "onnx":
        raise InputError(f"{args.model}: roofline analyses ONNX graphs, this is {fmt}; pass the "
                         "ONNX it was converted from, with --latency-from a bench of this file")
    analysis = analyze(args.model, shapes=_shapes(args.shape), fuse=not args.no_fuse)
    roofs = get_roofs(args.device)
    latency, source, notes = args.latency_ms, None, []
    if latency is not None:
        source = "--latency-ms"
    elif args.latency_from:
        latency, source = latency_from(args.latency_from, engine=args.engine)
    elif args.device == "host" and not args.no_measure:
        try:
            latency, source = measure_latency(args.model, engine=args.engine,
                                              threads=args.threads)
        except EdgertError as exc:
            notes.append(f"latency not measured on this host: {exc}")
    report = roofline(analysis, roofs, args.precision, latency_ms=latency, latency_source=source)
    report.notes.extend(notes)
    plots = []
    if args.plot:
        from converters.roofline.plot import plot_roofline
        plots = plot_roofline(report, args.plot)
    if args.json:
        from edgert.formatting import print_json
        d = report.to_dict()
        d["plots"] = plots
        print_json(d)
        return 0
    _print_report(report, args.top, plots)
    return 0


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3):]


def _print_report(report, top: int, plots) -> None:
    from edgert.formatting import fmt_num, print_kv, print_table

    layers = sorted(report.layers, key=lambda l: -l.share)
    shown = layers[:top] if top else layers
    unit = "GOP" if report.precision == "int8" else "GFLOP"
    print_table(
        f"{report.model}: {len(shown)} of {len(layers)} layers by share of the bound time "
        f"({report.precision} on {report.roofs.name})",
        ["layer", "op", "MFLOP", "weights KB", "act KB r+w", "FLOP/B", "bound", "bound us",
         "share"],
        [[_short(l.name), l.op_type, fmt_num(l.flops / 1e6), fmt_num(l.weight_bytes / 1e3),
          fmt_num((l.read_bytes + l.write_bytes) / 1e3), fmt_num(l.intensity), l.bound,
          fmt_num(l.bound_s * 1e6), f"{l.share:.1%}"] for l in shown])
    eff = report.efficiency
    pairs = [
        ("device", report.roofs.title),
        (f"peak {unit}/s", fmt_num(report.peak_gflops)),
        ("bandwidth GB/s", fmt_num(report.roofs.bandwidth_gbps)),
        ("ridge FLOP/byte", fmt_num(report.ridge)),
        ("GMACs", fmt_num(sum(l.macs for l in report.layers) / 1e9)),
        (f"{unit}s", fmt_num(report.flops / 1e9)),
        ("MB moved", fmt_num(report.bytes / 1e6)),
        ("memory-bound share", f"{report.time_share('memory'):.1%}"),
        ("roofline bound ms", fmt_num(report.bound_ms)),
        ("measured ms", fmt_num(report.latency_ms) + (f" ({report.latency_source})"
                                                      if report.latency_source else "")),
        ("efficiency (bound/measured)", f"{eff:.1%}" if eff is not None else "-"),
    ]
    pairs += [("plot", p) for p in plots]
    pairs += [("note", n) for n in report.notes]
    print_kv(f"{report.model} roofline", pairs)
