"""Build the demo app's bundled model, labels and sample images, then write its assets.

The model is a small digit classifier (8x8 gray -> 10 classes) trained with
scikit-learn on the digits data it ships (seeded), written as ONNX with
onnx.helper and converted to .mnn by MNN's own converter (``_tools.mnnconvert``,
never the console script). The samples are ten digits from the same data, one
per class, upscaled 8x as PNG. ``edgert android-assets`` logic then copies all
of it and the manifest into ``android_demo/app/src/main/assets``.

    python android_demo/scripts/build_demo_assets.py [--out DIR] [--extra MODEL.tflite ...]

``--extra`` adds models converted elsewhere (e.g. a .tflite of the same
network) to the same manifest.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "app", "src", "main", "assets")
LABELS = [str(d) for d in range(10)]


def train_digits(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = digits.images.reshape(len(digits.images), -1) / 16.0
    clf = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=500, random_state=seed)
    clf.fit(x, digits.target)
    return clf, digits


def write_onnx(clf, path: str) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, w2 = (w.astype(np.float32) for w in clf.coefs_)
    b1, b2 = (b.astype(np.float32) for b in clf.intercepts_)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"]),
         helper.make_node("Relu", ["h"], ["hr"]),
         helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"])],
        "digits_mlp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"),
                                                      (b2, "b2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def to_mnn(onnx_path: str, mnn_path: str) -> str:
    from converters.errors import ConversionError
    from edgert.native_output import capture_native_output

    with capture_native_output() as out:  # MNN prints a banner on C stdout at import
        import _tools  # MNN's C binding: no pip install, no usage upload

        _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                           "--MNNModel", mnn_path, "--bizCode", "edgert"])
    if not os.path.exists(mnn_path):
        raise ConversionError("MNN conversion failed: " + "; ".join(out.lines()[-5:]))
    return mnn_path


def write_samples(digits, folder: str, scale: int = 8) -> list:
    """One PNG per class (the first of each in the data), 8x nearest-neighbour upscaled."""
    from PIL import Image

    paths = []
    for d in range(10):
        i = int(np.flatnonzero(digits.target == d)[0])
        px = np.round(digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
        big = np.kron(px, np.ones((scale, scale), np.uint8))
        path = os.path.join(folder, f"digit_{d}.png")
        Image.fromarray(big, mode="L").convert("RGB").save(path, optimize=True)
        paths.append(path)
    return paths


def build(out_dir: str = DEFAULT_OUT, extra=(), check: str = "isolated") -> dict:
    from device_farm.android_assets import AssetOptions, write_assets

    clf, digits = train_digits()
    with tempfile.TemporaryDirectory() as tmp:
        mnn = to_mnn(write_onnx(clf, os.path.join(tmp, "digits_mlp.onnx")),
                     os.path.join(tmp, "digits_mlp.mnn"))
        samples = write_samples(digits, tmp)
        # pixel_scale 1/255 with mean 0 / std 1 gives the 0..1 range the model was trained on.
        opts = AssetOptions(labels=LABELS, top_k=3, check=check)
        return write_assets([mnn, *extra], out_dir, opts, images=samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="assets folder")
    ap.add_argument("--extra", nargs="*", default=[], help="more .tflite/.mnn models to bundle")
    args = ap.parse_args()
    manifest = build(os.path.normpath(args.out), args.extra)
    names = ", ".join(m["file"] for m in manifest["models"])
    print(f"wrote {names} and {len(manifest['samples'])} samples to {os.path.normpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..")))  # the repo's edgert
    sys.exit(main())
