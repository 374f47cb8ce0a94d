"""Write converted models and the manifest the Android demo reads into its assets.

The app hard-codes nothing about a model: names, shapes, dtypes, quantization,
preprocessing, labels and whether to apply a softmax all come from
``edgert_manifest.json``, written here from what ``edgert.load`` reads out of
each file (``Session.inputs``/``outputs`` and their ``QuantParams``). The app
loads only ``.tflite`` (LiteRT) and ``.mnn`` (MNN), so other formats are refused
here rather than failing on the phone.

Manifest (version 1)::

    {"format": "edgert-android-assets", "version": 1, "generator": "edgert 0.1.0",
     "models": [{"name", "file", "format", "sha256", "size_bytes", "host_engine",
                 "inputs": [TensorInfo.to_dict()], "outputs": [...],
                 "preprocess": PreprocessSpec.to_dict(),
                 "postprocess": {"output", "classes", "softmax", "top_k"},
                 "labels": [...] | null}],
     "samples": ["samples/<image>", ...]}
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from edgert.errors import InputError, ModelFileError
from edgert.files import file_sha256
from edgert.postprocess import looks_like_probabilities
from edgert.preprocess import PreprocessSpec, infer_layout, spec_for_input

MANIFEST_NAME = "edgert_manifest.json"
MANIFEST_FORMAT = "edgert-android-assets"
MANIFEST_VERSION = 1
APP_FORMATS = {".tflite": "tflite", ".mnn": "mnn"}
DEFAULT_OUT = os.path.join("android_demo", "app", "src", "main", "assets")


@dataclass
class AssetOptions:
    """How to preprocess and present every model of one ``android-assets`` call."""

    labels: Optional[List[str]] = None
    mean: Sequence[float] = (0.0,)
    std: Sequence[float] = (1.0,)
    pixel_scale: float = 1.0 / 255.0
    layout: Optional[str] = None      # None: from the engine, else from the shape
    color: str = "RGB"
    resize: str = "stretch"
    softmax: str = "auto"              # "auto": only when outputs are not probabilities
    top_k: int = 5
    check: str = "isolated"


def read_labels(path: str) -> List[str]:
    """One label per line; trailing blank lines dropped, inner blank lines kept as ''."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such labels file")
    with open(path, encoding="utf-8") as f:
        labels = [line.rstrip("\r\n") for line in f]
    while labels and not labels[-1].strip():
        labels.pop()
    if not labels:
        raise InputError(f"{path}: labels file is empty")
    return labels


def app_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in APP_FORMATS:
        raise ModelFileError(
            f"{path}: the Android demo loads only .tflite (LiteRT) and .mnn (MNN) files; "
            f"convert it first")
    return APP_FORMATS[ext]


def describe_model(path: str, opts: AssetOptions) -> Dict[str, object]:
    """The manifest entry of one model, read with ``edgert.load``."""
    import edgert

    fmt = app_format(path)
    with edgert.load(path, check=opts.check) as sess:
        inputs, outputs = sess.inputs, sess.outputs
        if len(inputs) != 1:
            raise InputError(f"{path}: the demo feeds one image, but the model has "
                             f"{len(inputs)} inputs: {[i.name for i in inputs]}")
        spec = _spec_for(inputs[0], fmt, opts)
        out = outputs[0]
        classes = int(np.prod(out.concrete_shape()))
        if opts.labels is not None and len(opts.labels) != classes:
            raise InputError(f"{path}: {len(opts.labels)} labels for output {out.name!r} "
                             f"with {classes} values")
        softmax = _needs_softmax(sess, out.name, opts.softmax)
        engine = sess.engine_version
    return {
        "name": os.path.basename(path), "file": os.path.basename(path), "format": fmt,
        "sha256": file_sha256(path), "size_bytes": os.path.getsize(path),
        "host_engine": engine,
        "inputs": [i.to_dict() for i in inputs], "outputs": [o.to_dict() for o in outputs],
        "preprocess": spec.to_dict(),
        "postprocess": {"output": out.name, "classes": classes, "softmax": softmax,
                        "top_k": min(opts.top_k, classes)},
        "labels": list(opts.labels) if opts.labels is not None else None,
    }


def _spec_for(info, fmt: str, opts: AssetOptions) -> PreprocessSpec:
    shape = list(info.shape)
    if len(shape) != 4:
        raise InputError(f"input {info.name!r} has shape {shape}; the demo needs a rank-4 "
                         f"image input")
    layout = opts.layout or getattr(info, "layout", None)
    if layout is None:
        try:
            layout = infer_layout(shape)
        except InputError:
            layout = "NHWC" if fmt == "tflite" else "NCHW"
    spec = spec_for_input(shape, layout=layout, color=opts.color, resize=opts.resize,
                          pixel_scale=opts.pixel_scale, mean=tuple(opts.mean),
                          std=tuple(opts.std), input=info.name,
                          dtype=np.dtype(info.dtype).name)
    if info.is_quantized:
        spec.quantization = info.quantization
    elif not np.issubdtype(np.dtype(info.dtype), np.floating):
        raise InputError(f"input {info.name!r} is {np.dtype(info.dtype).name} without "
                         f"quantization parameters; the demo feeds float or quantized images")
    return spec


def _needs_softmax(sess, output: str, mode: str) -> bool:
    if mode in ("yes", "no"):
        return mode == "yes"
    if mode != "auto":
        raise InputError(f"softmax must be auto, yes or no, got {mode!r}")
    scores = sess.run(sess.random_inputs(seed=0))[output]
    return not looks_like_probabilities(scores)


def write_assets(models: Sequence[str], out_dir: str = DEFAULT_OUT,
                 opts: Optional[AssetOptions] = None,
                 images: Sequence[str] = ()) -> Dict[str, object]:
    """Copy ``models`` (and sample ``images``) into ``out_dir`` and write the manifest."""
    import edgert

    opts = opts or AssetOptions()
    if not models:
        raise InputError("no model given")
    names = [os.path.basename(m) for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"two models share the file name {dup[0]!r}; rename one")
    for m in models:
        if not os.path.isfile(m):
            raise ModelFileError(f"{m}: no such model file")
    entries = [describe_model(m, opts) for m in models]
    os.makedirs(out_dir, exist_ok=True)
    for m in models:
        dest = os.path.join(out_dir, os.path.basename(m))
        if os.path.abspath(m) != os.path.abspath(dest):
            shutil.copyfile(m, dest)
    samples = _copy_samples(images, out_dir)
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                "generator": f"edgert {edgert.__version__}", "models": entries,
                "samples": samples}
    with open(os.path.join(out_dir, MANIFEST_NAME), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def _copy_samples(images: Sequence[str], out_dir: str) -> List[str]:
    if not images:
        return []
    sample_dir = os.path.join(out_dir, "samples")
    os.makedirs(sample_dir, exist_ok=True)
    rel = []
    for img in images:
        if not os.path.isfile(img):
            raise InputError(f"{img}: no such image file")
        name = os.path.basename(img)
        if os.path.splitext(name)[1].lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            raise InputError(f"{img}: Android decodes PNG/JPEG/WebP/BMP; convert it first")
        dest = os.path.join(sample_dir, name)
        if os.path.abspath(img) != os.path.abspath(dest):
            shutil.copyfile(img, dest)
        rel.append(f"samples/{name}")
    return rel


def load_manifest(out_dir: str) -> Dict[str, object]:
    """Read a manifest back (what the app does with org.json), checking its header."""
    path = os.path.join(out_dir, MANIFEST_NAME)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path}: not an edgert manifest version {MANIFEST_VERSION}")
    return data
