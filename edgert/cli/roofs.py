"""``edgert roofs``: measure this device's roofs (GEMM throughput, memory bandwidth).

numpy only (``edgert.microbench``), so it runs on a board with nothing else;
``--json`` output is what ``edgert roofline --device FILE.json`` takes, which is
how roofs measured on a device reach the roofline on another machine.
"""
from __future__ import annotations

HELP = "measure this device's compute and memory roofs (for the roofline)"


def add_arguments(p) -> None:
    p.add_argument("--seconds", type=float, default=3.0,
                   help="time budget of the measurement (default 3 s)")
    p.add_argument("--array-mb", type=int, help="MiB per array of the bandwidth test "
                   "(default 128, less on a device with little free memory)")
    p.add_argument("--fp32-only", action="store_true",
                   help="skip the fp16/int8 GEMMs (they need onnx + onnxruntime)")
    p.add_argument("--devices", action="store_true",
                   help="list the datasheet roofs of known devices instead of measuring")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def run(args) -> int:
    from edgert.formatting import fmt_num, print_json, print_table

    if args.devices:
        return _list_devices(args.json)
    from edgert.microbench import measure_roofs

    roofs = measure_roofs(seconds=args.seconds, array_mb=args.array_mb,
                          low_precision=not args.fp32_only)
    if args.json:
        print_json(roofs)
        return 0
    rows = []
    for p, fig in roofs["peak_gflops"].items():
        unit = "GOP/s" if p == "int8" else "GFLOP/s"
        rows.append([f"{p} GEMM", fmt_num(fig["value"]) if fig else "-", unit,
                     fig["source"] if fig else "not measured (needs onnx + onnxruntime)"])
    bw = roofs["bandwidth_gbps"]
    rows.append(["memory bandwidth", fmt_num(bw["value"]), "GB/s", bw["source"]])
    print_table(f"roofs of {roofs['title']}", ["roof", "value", "unit", "how"], rows,
                caption="best of repeated runs; on a shared or throttling device, run again")
    return 0


def _list_devices(as_json: bool) -> int:
    from converters.roofline.devices import device_names, get_roofs
    from edgert.formatting import fmt_num, print_json, print_table

    roofs = [get_roofs(n) for n in device_names()]
    if as_json:
        print_json([r.to_dict() for r in roofs])
        return 0
    print_table("datasheet roofs (converters/roofline/devices.json)",
                ["device", "fp32 GFLOP/s", "fp16 GFLOP/s", "int8 GOP/s", "GB/s", "unit"],
                [[r.name, fmt_num(r.peak_gflops["fp32"]), fmt_num(r.peak_gflops["fp16"]),
                  fmt_num(r.peak_gflops["int8"]), fmt_num(r.bandwidth_gbps), r.unit]
                 for r in roofs])
    return 0
