"""``edgert android-assets MODEL...``: models + manifest into the Android demo's assets."""
from __future__ import annotations

HELP = "write models and their manifest into the Android demo app's assets"


def add_arguments(p) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite or .mnn files")
    p.add_argument("--out", default=None,
                   help="assets folder (default android_demo/app/src/main/assets)")
    p.add_argument("--labels", help="class labels, one per line")
    from edgert.cli.common import add_preprocess_arguments

    add_preprocess_arguments(p)
    p.add_argument("--layout", choices=["NCHW", "NHWC"],
                   help="input layout (default: from the engine, else from the shape)")
    p.add_argument("--softmax", choices=["auto", "yes", "no"], default="auto",
                   help="apply softmax to the output (auto: unless it already sums to 1)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--images", nargs="+", default=[],
                   help="sample images to bundle (PNG/JPEG), copied to assets/samples/")
    p.add_argument("--no-isolated-check", action="store_true",
                   help="skip the first load of each model in a child process")
    p.add_argument("--json", action="store_true", help="print the manifest")


def run(args) -> int:
    from device_farm.android_assets import DEFAULT_OUT, AssetOptions, read_labels, write_assets
    from edgert.formatting import print_json, print_table
    from edgert.tensors import shape_str

    opts = AssetOptions(
        labels=read_labels(args.labels) if args.labels else None, mean=args.mean,
        std=args.std, pixel_scale=args.pixel_scale, layout=args.layout, color=args.color,
        resize=args.resize, softmax=args.softmax, top_k=args.top_k,
        check="structure" if args.no_isolated_check else "isolated")
    out = args.out or DEFAULT_OUT
    manifest = write_assets(args.models, out, opts, images=args.images)
    if args.json:
        print_json(manifest)
        return 0
    rows = []
    for m in manifest["models"]:
        pre, post = m["preprocess"], m["postprocess"]
        quant = "int" if pre["quantization"] else "float"
        rows.append([m["file"], m["format"], shape_str(tuple(m["inputs"][0]["shape"])),
                     f'{pre["layout"]} {pre["color"]}', quant, post["classes"],
                     "yes" if post["softmax"] else "no"])
    print_table(f"wrote {len(rows)} model(s) and edgert_manifest.json to {out}",
                ["model", "format", "input", "layout", "input type", "classes", "softmax"],
                rows, caption=f"{len(manifest['samples'])} sample image(s)")
    return 0
