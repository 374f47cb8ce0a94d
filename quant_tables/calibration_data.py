"""Calibration data: the user's arrays, cut into feeds the model accepts.

Accepted forms (``--data`` on the command line):

* a dict ``{input name: array}`` or, for a one-input model, one array — the first
  axis is the batch axis;
* a ``.npz`` file (arrays by input name) or ``.npy`` file (one-input models);
* a directory of ``.npz``/``.npy`` files, each one feed, in file-name order.

Arrays are split along the batch axis into the batch the model takes: its fixed
batch size, or ``batch`` samples when the batch dimension is dynamic.
"""
from __future__ import annotations

import os
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from edgert.errors import InputError
from edgert.files import load_arrays

DataLike = Union[str, "os.PathLike[str]", np.ndarray, Mapping[str, np.ndarray],
                 Sequence[Mapping[str, np.ndarray]]]


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


def _feeds(data: DataLike, names: List[str], shapes, batch: int):
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            files = sorted(f for f in os.listdir(path) if f.endswith((".npy", ".npz")))
            if not files:
                raise InputError(f"{path}: no .npy or .npz files in this directory")
            for f in files:
                full = os.path.join(path, f)
                yield _name_single(_load_file(full), names, full)
            return
        if not os.path.exists(path):
            raise InputError(f"{path}: no such calibration data file or directory")
        yield from _split(_name_single(_load_file(path), names, path), shapes, batch, path)
        return
    if isinstance(data, np.ndarray):
        yield from _split(_name_single({"__single__": data}, names, "data"), shapes, batch, "data")
        return
    if isinstance(data, Mapping):
        yield from _split(_name_single(dict(data), names, "data"), shapes, batch, "data")
        return
    for i, feed in enumerate(data):  # a sequence of ready feeds
        if isinstance(feed, np.ndarray):
            feed = {"__single__": feed}
        yield _name_single(dict(feed), names, f"data[{i}]")
