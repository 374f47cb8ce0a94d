"""``edgert info MODEL``: inputs, outputs, op counts, size, quantized or not."""
from __future__ import annotations

import os

HELP = "describe a model: inputs, outputs, ops, size, quantization"


def add_arguments(p) -> None:
    from edgert.cli.common import add_load_arguments

    add_load_arguments(p)


def describe(sess) -> dict:
    ops = sess.op_counts()
    quantized = bool(sess.file_details.get("quantized")) or any(
        t.is_quantized for t in sess.inputs + sess.outputs) or any(
        k.upper().startswith(("QUANTIZE", "DEQUANTIZE")) for k in ops)
    return {
        "model": sess.path,
        "format": sess.format,
        "size_bytes": os.path.getsize(sess.path),
        "engine": sess.engine_name,
        "engine_version": sess.engine_version,
        "inputs": [t.to_dict() for t in sess.inputs],
        "outputs": [t.to_dict() for t in sess.outputs],
        "op_counts": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "ops_total": sum(ops.values()),
        "quantized": quantized,
        "quantization": sess.file_details.get("quantization"),   # MNN: weights, activations
        "load_ms": sess.load_ms,
    }


def run(args) -> int:
    from edgert.cli.common import load_from_args
    from edgert.formatting import print_json, print_table
    from edgert.tensors import shape_str

    sess = load_from_args(args)
    d = describe(sess)
    if args.json:
        print_json(d)
        return 0
    print_table(
        f"{os.path.basename(sess.path)}  ({d['format']}, {d['size_bytes'] / 1e6:.2f} MB, "
        f"{d['engine_version']}, {'quantized' if d['quantized'] else 'float'})",
        ["io", "name", "shape", "dtype", "quantization"],
        [[kind, t["name"], shape_str(tuple(t["shape"])), t["dtype"],
          _quant_str(t["quantization"])]
         for kind, key in (("input", "inputs"), ("output", "outputs")) for t in d[key]])
    if d["op_counts"]:
        print_table(f"ops ({d['ops_total']} in all)", ["op", "count"],
                    [[k, v] for k, v in d["op_counts"].items()])
    return 0


def _quant_str(q) -> str:
    if not q:
        return "-"
    if len(q["scale"]) == 1:
        return f"scale={q['scale'][0]:.6g} zp={q['zero_point'][0]}"
    return f"per-channel axis {q['axis']} ({len(q['scale'])} scales)"
