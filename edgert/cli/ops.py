"""``edgert ops``: which ONNX ops a conversion target takes.

For tflite the answer is the lowering registry itself: each ONNX op, the opsets
it covers, the TFLite builtins it becomes, its op family and how the layout
planner treats it (so "will this need a TRANSPOSE?" has an answer). For mnn it
is the list MNN's own converter prints. Both add the ops the target lacks that
convert as other ops (``converters.passes.decompose``, Einsum's pass). Heavy
imports happen inside ``run``.
"""
from __future__ import annotations

HELP = "list the ONNX ops a conversion target supports (tflite, mnn)"
TARGETS = ("tflite", "mnn")


def add_arguments(p) -> None:
    p.add_argument("--target", choices=TARGETS, default="tflite", help="conversion target")
    p.add_argument("--op", help="show only this ONNX op type")
    p.add_argument("--json", action="store_true", help="print JSON")


def _tflite_rows():
    from converters.layout.check import layout_kinds
    from converters.tflite.registry import all_lowerings

    kinds = layout_kinds()
    rows = []
    for e in all_lowerings():
        rows.append({"onnx_op": e.label, "opsets": str(e.opsets),
                     "emits": list(e.emits), "family": e.family,
                     "layout": kinds.get(e.label, "logical"),
                     "node_checks": e.check is not None, "description": e.doc})
    return rows


def _decomposed_tflite_rows():
    """Ops with no lowering that convert as other ops: the decomposition table's and
    Einsum (the decompose_einsum pass)."""
    from converters.passes.decompose import decompositions
    from converters.tflite.registry import lowerings_of

    table = {op: d.formula for op, d in decompositions().items() if not lowerings_of(op)}
    table["Einsum"] = "Transpose/Reshape + MatMul (+ ReduceSum) (decompose_einsum pass)"
    return [{"onnx_op": op, "opsets": "", "emits": [], "family": "decomposed",
             "layout": "-", "node_checks": False, "description": f"as {formula}"}
            for op, formula in sorted(table.items())]


def _mnn_rows():
    from converters.mnn.support import WRONG, supported_ops
    from converters.passes.decompose import decompositions

    table = {op: d.formula for op, d in decompositions().items()
             if op not in supported_ops() or op in WRONG}
    return [{"onnx_op": op, **({"decomposed": table[op]} if op in table else {})}
            for op in sorted(supported_ops() | set(table))]


def run(args) -> int:
    from edgert.formatting import print_json, print_table

    rows = _tflite_rows() + _decomposed_tflite_rows() if args.target == "tflite" \
        else _mnn_rows()
    if args.op:
        rows = [r for r in rows if r["onnx_op"].lower() == args.op.lower()
                or r["onnx_op"].lower().endswith("::" + args.op.lower())]
        if not rows:
            from edgert.errors import InputError
            known = _tflite_rows() + _decomposed_tflite_rows() if args.target == "tflite" \
                else _mnn_rows()
            raise InputError(f"{args.target} takes no ONNX op {args.op!r}. Supported ops: "
                             + ", ".join(sorted(r["onnx_op"] for r in known)))
    if args.json:
        print_json({"target": args.target, "ops": rows})
        return 0
    if args.target == "tflite":
        n_dec = sum(1 for r in rows if r["family"] == "decomposed")
        print_table(f"tflite: {len(rows) - n_dec} lowerings, {n_dec} decomposed ops",
                    ["ONNX op", "opsets", "TFLite ops",
                                                        "family", "layout", "description"],
                    [[r["onnx_op"], r["opsets"], " ".join(r["emits"]) or "(none)", r["family"],
                      r["layout"], r["description"]] for r in rows],
                    caption="layout: spatial ops run NHWC; follow/reduce/last-axis ops are "
                            "rewritten for the stored layout; logical ops need the source "
                            "layout (a TRANSPOSE when it differs)")
    else:
        print_table(f"mnn: {len(rows)} ONNX ops (MNN's list; decompositions)",
                    ["ONNX op", "decomposed as"],
                    [[r["onnx_op"], r.get("decomposed", "")] for r in rows])
    return 0
