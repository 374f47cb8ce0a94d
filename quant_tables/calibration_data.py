"""Calibration data: the user's arrays, cut into feeds the model accepts.

Accepted forms (``--data`` on the command line):

* a dict ``{input name: array}`` or, for a one-input model, one array — the first
  axis is the batch axis; torch tensors wherever an array goes;
* a list of feeds, each an array (one-input models), a tuple of arrays in input order,
  or a dict;
* a ``.npz`` file (arrays by input name) or ``.npy`` file (one-input models);
* a directory of ``.npz``/``.npy`` files, each one feed, in file-name order;
* a directory of images (JPEG, PNG, BMP, PPM...) for a model with one image input,
  each image preprocessed as the input expects (``ImageFolder``: resized to the
  input's height and width, scaled by ``pixel_scale``, normalized with ``mean``/``std``,
  laid out NCHW or NHWC as the input shape says) with ``edgert.preprocess``, the
  same steps the Android demo applies. What MNN's and TFLite's own calibration
  tools take, and what most users have at hand.

Arrays are split along the batch axis into the batch the model takes: its fixed
batch size, or ``batch`` samples when the batch dimension is dynamic.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edgert.errors import InputError
from edgert.files import load_arrays
from edgert.preprocess import IMAGE_EXTENSIONS


@dataclass
class ImageFolder:
    """Images in a directory as calibration data, and how to turn them into the input.

    ``mean`` and ``std`` apply after ``pixel_scale`` (default 1/255: pixels in [0, 1]);
    ImageNet-trained models usually want mean (0.485, 0.456, 0.406) and std
    (0.229, 0.224, 0.225). They must match the preprocessing the model was trained
    with, or the calibrated ranges are those of inputs the model never sees.
    """

    path: str
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    pixel_scale: float = 1.0 / 255.0
    color: str = "RGB"
    resize: str = "stretch"

    def describe(self) -> str:
        return (f"images in {self.path} ({self.resize}, {self.color}, x{self.pixel_scale:g}, "
                f"mean {list(self.mean)}, std {list(self.std)})")


DataLike = Union[str, "os.PathLike[str]", np.ndarray, Mapping[str, np.ndarray],
                 Sequence[Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]],
                 ImageFolder]


def _load_file(path: str) -> Dict[str, np.ndarray]:
    data = load_arrays(path)
    return {"__single__": data} if isinstance(data, np.ndarray) else data


def _name_single(arrays: Dict[str, np.ndarray], input_names: List[str], where: str
                 ) -> Dict[str, np.ndarray]:
    if list(arrays) == ["__single__"]:
        if len(input_names) != 1:
            raise InputError(f"{where}: one array for a model with inputs {input_names}; "
                             f"use a .npz with one array per input name")
        return {input_names[0]: arrays["__single__"]}
    missing = [n for n in input_names if n not in arrays]
    if missing and len(input_names) == 1 and len(arrays) == 1:
        return {input_names[0]: next(iter(arrays.values()))}   # one input, one array
    if missing:
        raise InputError(f"{where}: no array for model input(s) {missing}; "
                         f"arrays present: {sorted(arrays)}")
    return {n: arrays[n] for n in input_names}


def _split(arrays: Dict[str, np.ndarray], shapes: Mapping[str, Sequence], batch: int,
           where: str) -> Iterator[Dict[str, np.ndarray]]:
    n = {k: v.shape[0] if v.ndim else 1 for k, v in arrays.items()}
    if len(set(n.values())) > 1:
        raise InputError(f"{where}: inputs have different sample counts {n}")
    total = next(iter(n.values()))
    first = next(iter(shapes.values())) if shapes else [None]
    fixed = first[0] if first and isinstance(first[0], int) and first[0] > 0 else None
    step = fixed or max(1, batch)
    if fixed and total % fixed:
        raise InputError(f"{where}: {total} samples do not split into batches of {fixed} "
                         f"(the model's fixed batch size)")
    for start in range(0, total, step):
        yield {k: np.ascontiguousarray(v[start:start + step]) for k, v in arrays.items()}


def iter_feeds(data: DataLike, shapes: Mapping[str, Sequence], batch: int = 16,
               limit: Optional[int] = None) -> Iterator[Dict[str, np.ndarray]]:
    """Feeds for a model with input ``shapes`` (name -> dims) from ``data``."""
    names = list(shapes)
    count = 0
    for feed in _feeds(data, names, shapes, batch):
        feed = {k: _as_dtype(v, k) for k, v in feed.items()}
        yield feed
        count += 1
        if limit is not None and count >= limit:
            return


def _as_dtype(v: np.ndarray, name: str) -> np.ndarray:
    if np.issubdtype(v.dtype, np.floating) and v.dtype != np.float32:
        return v.astype(np.float32)
    return v


def image_files(path: str) -> List[str]:
    return sorted(os.path.join(path, f) for f in os.listdir(path)
                  if f.lower().endswith(IMAGE_EXTENSIONS))


def _image_feeds(folder: ImageFolder, names: List[str], shapes, batch: int):
    from edgert.preprocess import preprocess, read_image, spec_for_input

    if not os.path.isdir(folder.path):
        raise InputError(f"{folder.path}: no such image directory")
    files = image_files(folder.path)
    if not files:
        raise InputError(f"{folder.path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    if len(names) != 1:
        raise InputError(f"{folder.path}: images calibrate a model with one image input; this "
                         f"one has inputs {names} (give a .npz with an array per input)")
    shape = list(shapes[names[0]])
    if len(shape) != 4 or any(not isinstance(d, int) or d < 1 for d in shape[1:]):
        raise InputError(f"{folder.path}: input {names[0]!r} has shape {shape}; images need a "
                         f"rank-4 input with fixed channels, height and width (--input-shape)")
    spec = spec_for_input(shape, mean=tuple(folder.mean), std=tuple(folder.std),
                          pixel_scale=folder.pixel_scale, color=folder.color,
                          resize=folder.resize, input=names[0])
    fixed = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    step = fixed or max(1, batch)
    for start in range(0, len(files), step):
        chunk = files[start:start + step]
        if fixed and len(chunk) < fixed:
            return          # the model takes exactly ``fixed`` images per run
        yield {names[0]: np.concatenate([preprocess(read_image(f), spec) for f in chunk])}


def _feeds(data: DataLike, names: List[str], shapes, batch: int):
    if isinstance(data, ImageFolder):
        yield from _image_feeds(data, names, shapes, batch)
        return
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            files = sorted(f for f in os.listdir(path) if f.endswith((".npy", ".npz")))
            if not files and image_files(path):
                yield from _image_feeds(ImageFolder(path), names, shapes, batch)
                return
            if not files:
                raise InputError(f"{path}: no .npy, .npz or image files in this directory")
            for f in files:
                full = os.path.join(path, f)
                yield _name_single(_load_file(full), names, full)
            return
        if not os.path.exists(path):
            raise InputError(f"{path}: no such calibration data file or directory")
        yield from _split(_name_single(_load_file(path), names, path), shapes, batch, path)
        return
    if _is_array(data):
        yield from _split(_name_single({"__single__": _array(data, "data")}, names, "data"),
                          shapes, batch, "data")
        return
    if isinstance(data, Mapping):
        arrays = {k: _array(v, f"data[{k!r}]") for k, v in data.items()}
        yield from _split(_name_single(arrays, names, "data"), shapes, batch, "data")
        return
    if not hasattr(data, "__iter__"):
        raise InputError(f"calibration data of type {type(data).__name__}; {ACCEPTED}")
    for i, feed in enumerate(data):  # a sequence of ready feeds
        yield _name_single(_feed(feed, names, f"data[{i}]"), names, f"data[{i}]")


ACCEPTED = ("accepted: an array or tensor (one-input models), a dict {input name: array}, a "
            "list of feeds (each an array, a tuple of arrays in input order, or a dict), a "
            ".npz/.npy file, or a folder of .npz/.npy files or images")


def _is_array(v) -> bool:
    return isinstance(v, np.ndarray) or (hasattr(v, "detach") and hasattr(v, "numpy"))


def _array(v, where: str) -> np.ndarray:
    """A numpy array from an array or a torch tensor (what a torch user has at hand)."""
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        return v.detach().cpu().numpy()
    raise InputError(f"{where}: a {type(v).__name__}, not an array; {ACCEPTED}")


def _feed(feed, names: List[str], where: str) -> Dict[str, np.ndarray]:
    """One feed of a list: an array, a tuple/list of arrays in input order, or a dict."""
    if _is_array(feed):
        return {"__single__": _array(feed, where)}
    if isinstance(feed, Mapping):
        return {k: _array(v, f"{where}[{k!r}]") for k, v in feed.items()}
    if isinstance(feed, (tuple, list)):
        if len(feed) != len(names):
            raise InputError(
                f"{where}: {len(feed)} arrays for a model with input(s) {names}: give the "
                f"inputs only, in that order (a data loader's (images, labels) batches: "
                f"pass [x for x, _ in loader])")
        return {n: _array(v, f"{where}[{k}]") for k, (n, v) in enumerate(zip(names, feed))}
    raise InputError(f"{where}: a {type(feed).__name__}; {ACCEPTED}")
