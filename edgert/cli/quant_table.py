"""``edgert quant-table show|validate|import|export``: inspect, check and convert tables.

One command with four actions, because they share the table argument and the
output style: ``show`` prints what a table (quantization or sparsity) holds,
``validate`` checks it (schema, semantics, and against a model's graph with
``--model``), ``import`` makes an edgert table from AIMET encodings, a TensorRT
calibration cache or a QDQ ONNX model, ``export`` writes one as MNN compression
params or as a QDQ ONNX simulation model.
"""
from __future__ import annotations

import os

HELP = "show, validate, import (AIMET, TensorRT, QDQ ONNX) and export quantization tables"

_ACTIONS = ("show", "validate", "import", "export")


def add_arguments(p) -> None:
    from edgert.cli.common import add_overwrite_argument

    sub = p.add_subparsers(dest="action", metavar="ACTION")
    s = sub.add_parser("show", help="print what a table holds")
    s.add_argument("table", help="quantization or sparsity table (.json)")
    s.add_argument("--limit", type=int, default=50, help="rows to print (default 50; 0: all)")
    s.add_argument("--json", action="store_true", help="print the table summary as JSON")
    v = sub.add_parser("validate", help="check a table (and against a model with --model)")
    v.add_argument("table", help="quantization or sparsity table (.json)")
    v.add_argument("--model", help="ONNX model the table is for: names and channel counts")
    v.add_argument("--strict", action="store_true",
                   help="fail (exit 1) when the table names tensors the model lacks")
    v.add_argument("--json", action="store_true")
    i = sub.add_parser("import", help="make an edgert table from another tool's output")
    i.add_argument("source", help="AIMET encodings .json, TensorRT cache, or QDQ .onnx")
    i.add_argument("--from", dest="source_kind", required=True,
                   choices=["aimet", "tensorrt", "qdq"], help="what SOURCE is")
    i.add_argument("-o", "--output", required=True, help="table to write (.json)")
    i.add_argument("--model", help="ONNX model the table is for (per-channel axes, name check)")
    i.add_argument("--float-model", help="qdq: where to write the float model without Q/DQ "
                                         "(default: SOURCE with .float.onnx)")
    i.add_argument("--json", action="store_true")
    add_overwrite_argument(i)
    e = sub.add_parser("export", help="write a table in another tool's form")
    e.add_argument("table", help="quantization table (.json)")
    e.add_argument("--to", required=True, choices=["mnn", "qdq"],
                   help="mnn: MNN compression params (.json); qdq: QDQ ONNX simulation model")
    e.add_argument("--model", required=True, help="the float ONNX model the table is for")
    e.add_argument("-o", "--output", required=True, help="file to write")
    e.add_argument("--json", action="store_true")
    add_overwrite_argument(e)
    p.set_defaults(action=None)


def _save_whole(save, path: str) -> None:
    """``save(staged_path)``, moved to ``path`` when complete (edgert.outputs)."""
    from edgert.outputs import OutputFolder

    with OutputFolder(os.path.dirname(os.path.abspath(path)), overwrite=True) as folder:
        with folder.writing(os.path.basename(path)) as staged:
            save(str(staged))


def run(args) -> int:
    if args.action not in _ACTIONS:
        from edgert.errors import InputError
        raise InputError("quant-table needs an action: " + ", ".join(_ACTIONS))
    return {"show": _show, "validate": _validate, "import": _import,
            "export": _export}[args.action](args)


def _rows_quant(table, limit: int):
    from edgert.formatting import fmt_num

    rows = []
    for name, a in sorted(table.activations.items()):
        lo, hi = a.real_range
        rows.append(["activation", name, a.dtype, fmt_num(a.scale, 4), a.zero_point,
                     f"[{fmt_num(lo)}, {fmt_num(hi)}]", a.source or "-"])
    for name, w in sorted(table.weights.items()):
        scale = fmt_num(w.scale[0], 4) if len(w.scale) == 1 else \
            f"{fmt_num(min(w.scale), 3)}..{fmt_num(max(w.scale), 3)} ({len(w.scale)})"
        rows.append(["weight", name, w.dtype, scale,
                     w.zero_point[0] if len(set(w.zero_point)) == 1 else "per-channel",
                     "per tensor" if w.axis is None else f"axis {w.axis}", w.source or "-"])
    for o in table.overrides:
        rows.append(["float", o.describe(), "-", "-", "-", "-", "override"])
    return rows if not limit else rows[:limit], len(rows)


def _show(args) -> int:
    from edgert.formatting import print_json, print_kv, print_table
    from quant_tables import QuantTable, load_table

    table = load_table(args.table)
    if isinstance(table, QuantTable):
        summary = table.summary()
        if args.json:
            print_json({"table": args.table, **summary})
            return 0
        print_kv(f"{os.path.basename(args.table)} (quantization table)",
                 [(k, v) for k, v in summary.items()])
        rows, total = _rows_quant(table, args.limit)
        print_table("tensors", ["kind", "name", "dtype", "scale", "zero point", "range / axis",
                                "source"], rows,
                    caption=f"{len(rows)} of {total} rows" if len(rows) < total else None)
        return 0
    summary = {"weights": len(table.weights), "producer": table.provenance.producer,
               "created": table.provenance.created, "source": table.provenance.source}
    if args.json:
        print_json({"table": args.table, **summary,
                    "entries": {k: v.to_dict() for k, v in table.weights.items()}})
        return 0
    print_kv(f"{os.path.basename(args.table)} (sparsity table)", list(summary.items()))
    rows = [[k, e.pattern, _pattern_args(e), e.measured if e.measured is not None else "-",
             e.target if e.target is not None else "-", e.mask_source]
            for k, e in sorted(table.weights.items())]
    print_table("weights", ["weight", "pattern", "shape", "measured", "target", "mask"],
                rows[: args.limit or None])
    return 0


def _pattern_args(e) -> str:
    if e.pattern == "block":
        return "x".join(map(str, e.block)) + f" on axes {list(e.axes)}"
    if e.pattern == "n:m":
        return f"{e.n}:{e.m} along axis {e.pattern_axis}"
    if e.pattern == "channel":
        return f"axis {e.pattern_axis}" + (f", {len(e.pruned)} pruned" if e.pruned else "")
    return "-"


def _validate(args) -> int:
    from edgert.formatting import print_json
    from quant_tables import QuantTable, load_table

    table = load_table(args.table)
    report = {"table": args.table, "valid": True, "unknown": []}
    if args.model:
        if isinstance(table, QuantTable):
            from quant_tables.validate import check_against_graph
            check = check_against_graph(table, args.model, where=args.table)
            report.update(unknown=check.unknown, matched_activations=check.matched_activations,
                          matched_weights=check.matched_weights)
        else:
            from quant_tables.sparsity_table import check_graph_names
            report["unknown"] = check_graph_names(table, args.model, where=args.table)
    code = 1 if (args.strict and report["unknown"]) else 0
    report["valid"] = code == 0
    if args.json:
        print_json(report)
        return code
    print(f"{args.table}: valid {type(table).__name__}"
          + (f" for {args.model}" if args.model else ""))
    if report["unknown"]:
        print(f"warning: {len(report['unknown'])} name(s) not in the model: "
              + ", ".join(report["unknown"][:20]) + (" ..." if len(report["unknown"]) > 20 else ""))
    return code


def _import(args) -> int:
    from edgert.formatting import print_json
    from quant_tables.importers import get_importer

    from edgert.cli.common import output_file

    output_file(args.output, args)
    if args.source_kind == "qdq":
        float_out = args.float_model or os.path.splitext(args.source)[0] + ".float.onnx"
        output_file(float_out, args)
    result = get_importer(args.source_kind)(args.source, model=args.model)
    table = result.table
    written = {"table": args.output}
    if result.float_model is not None:
        import onnx
        out = args.float_model or os.path.splitext(args.source)[0] + ".float.onnx"
        _save_whole(lambda path: onnx.save(result.float_model, path), out)
        written["float_model"] = out
    unknown = []
    check_model = args.model or written.get("float_model")
    if check_model:
        from quant_tables.validate import check_against_graph
        unknown = check_against_graph(table, check_model, where=args.output).unknown
    table.save(args.output)
    report = {**written, "activations": len(table.activations), "weights": len(table.weights),
              "overrides": len(table.overrides), "unknown": unknown, "notes": result.notes}
    if args.json:
        print_json(report)
        return 0
    print(f"wrote {args.output}: {report['activations']} activations, {report['weights']} "
          f"weights, {report['overrides']} float overrides (from {args.source_kind})")
    if "float_model" in written:
        print(f"wrote {written['float_model']}: the float model without QuantizeLinear/"
              f"DequantizeLinear")
    for n in result.notes:
        print(f"note: {n}")
    if unknown:
        print(f"warning: {len(unknown)} name(s) not in the model: {', '.join(unknown[:20])}")
    return 0


def _export(args) -> int:
    from edgert.formatting import print_json
    from quant_tables import QuantTable

    from edgert.cli.common import output_file

    output_file(args.output, args)
    table = QuantTable.load(args.table)
    if args.to == "mnn":
        from quant_tables.exporters.mnn_compress import write_mnn_compression_params
        rep = write_mnn_compression_params(table, args.model, args.output)
        report = {"output": args.output, "layers": rep.layers,
                  "skipped": [{"node": n, "reason": r} for n, r in rep.skipped]}
    else:
        import onnx
        from quant_tables.exporters.qdq_onnx import insert_qdq
        model, notes = insert_qdq(args.model, table)
        _save_whole(lambda path: onnx.save(model, path), args.output)
        report = {"output": args.output, "notes": notes}
    if args.json:
        print_json(report)
        return 0
    if args.to == "mnn":
        print(f"wrote {args.output}: {len(report['layers'])} int8 layers for MNN")
        for s in report["skipped"]:
            print(f"  float: {s['node']}: {s['reason']}")
    else:
        print(f"wrote {args.output}: QDQ simulation of the table")
        for n in report["notes"]:
            print(f"note: {n}")
    return 0
