"""Write the shared test vector: an image and what edgert's Python code makes of it.

The Java core's unit tests (``android_demo/core/src/test``) read this folder and
must produce the same tensors (within 1e-6), the same quantized integers, the
same softmax/top-k and the same latency statistics. The committed copy lives in
``android_demo/core/src/test/resources/testvector``; regenerate it with

    python android_demo/scripts/make_test_vector.py

(from the repository root). tests/android checks that the committed copy equals
what this script writes now, so a change on the Python side cannot leave the
Java side testing against stale numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "core", "src", "test", "resources", "testvector")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> PreprocessSpec arguments (+ quantization as (scale, zero_point)).
CASES = {
    "stretch_nchw_rgb_down": dict(height=5, width=7, layout="NCHW", color="RGB",
                                  mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "crop_sides_nhwc_bgr": dict(height=6, width=6, layout="NHWC", color="BGR", resize="center_crop",
                                mean=(0.5,), std=(0.5,)),
    "gray_nchw_up": dict(height=20, width=24, channels=1, layout="NCHW", color="GRAY",
                         mean=(0.1307,), std=(0.3081,)),
    "uint8_nhwc_raw": dict(height=4, width=4, layout="NHWC", color="RGB", dtype="uint8",
                           quant=(1.0 / 255.0, 0)),
    "int8_crop_top_nchw": dict(height=3, width=8, layout="NCHW", color="RGB", resize="center_crop",
                               mean=(0.45,), std=(0.27,), dtype="int8", quant=(0.0187, -5)),
    "int8_pixels_nhwc": dict(height=9, width=13, layout="NHWC", color="RGB", pixel_scale=1.0,
                             mean=(128.0,), std=(1.0,), dtype="int8", quant=(1.0, 0)),
}


def _floats(a) -> list:
    return [float(v) for v in np.asarray(a).reshape(-1)]


def preprocess_cases(img: np.ndarray) -> list:
    from edgert.preprocess import PreprocessSpec, preprocess
    from edgert.tensors import QuantParams

    cases = []
    for name, args in CASES.items():
        args = dict(args)
        quant = args.pop("quant", None)
        spec = PreprocessSpec(**args, input="image",
                              quantization=QuantParams((quant[0],), (quant[1],)) if quant else None)
        floats_spec = PreprocessSpec(**{**args, "dtype": "float32"}, input="image")
        x = preprocess(img, floats_spec)
        q = preprocess(img, spec) if quant else None
        cases.append({"name": name, "preprocess": spec.to_dict(), "shape": list(x.shape),
                      "expected": _floats(x),
                      "expected_quantized": [int(v) for v in q.reshape(-1)] if q is not None else None})
    return cases


def postprocess_cases(rng: np.random.Generator) -> dict:
    from edgert.postprocess import softmax, top_k
    from edgert.tensors import QuantParams
    from edgert.timing import latency_stats

    deq = []
    for dtype, shape, qp in (("int8", [1, 6], QuantParams((0.0390625,), (-7,))),
                             ("uint8", [1, 5], QuantParams((0.00390625,), (0,))),
                             ("int8", [1, 3, 2], QuantParams((0.5, 0.25, 0.125), (0, 1, -1), axis=1))):
        info = np.iinfo(dtype)
        q = rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
        deq.append({"dtype": dtype, "shape": shape, "quantization": qp.to_dict(),
                    "q": [int(v) for v in q.reshape(-1)], "expected": _floats(qp.dequantize(q))})
    scores = [rng.normal(0, 3, size=10).astype(np.float32),
              np.array([1, 3, 3, -2, 3, 0.5], np.float32),  # ties: lower index first
              np.array([50, -50, 0, 49.5], np.float32)]     # large logits: max subtraction
    soft = [{"scores": _floats(s), "expected": _floats(softmax(s))} for s in scores]
    topk = [{"scores": _floats(s), "k": k, "expected": [i for i, _ in top_k(s, k)]}
            for s in scores for k in (1, 3, len(s))]
    lat = []
    for n in (1, 2, 7, 50, 101):
        ms = rng.gamma(4.0, 0.5, size=n) + 1.0
        lat.append({"ms": _floats(ms), "expected": latency_stats(list(ms))})
    return {"dequantize": deq, "softmax": soft, "top_k": topk, "latency": lat}


def vector_image(seed: int = 0) -> np.ndarray:
    """13 x 9 RGB: a smooth gradient plus seeded noise (odd sizes test every crop path)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:9, 0:13]
    base = np.stack([xx * 19, yy * 28, (xx + yy) * 9], axis=-1).astype(np.int64)
    return np.clip(base + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)


def build_vector(out_dir: str = DEFAULT_OUT) -> str:
    from edgert.preprocess import write_ppm

    os.makedirs(out_dir, exist_ok=True)
    img = vector_image()
    write_ppm(os.path.join(out_dir, "image.ppm"), img)
    vector = {"image": "image.ppm", "preprocess": preprocess_cases(img),
              **postprocess_cases(np.random.default_rng(1))}
    path = os.path.join(out_dir, "vector.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(vector, f, indent=1)
        f.write("\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    args = ap.parse_args()
    print(build_vector(os.path.normpath(args.out)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..")))  # the repo's edgert
    sys.exit(main())
