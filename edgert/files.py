"""Small file helpers every package uses: a file's sha256 and arrays from .npy/.npz.

One copy here (edgert is the bottom layer: converters, quant_tables and
device_farm all import it), so a content hash means the same thing in the probe
cache, the device farm's deploy cache, Android manifests and table provenance.
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, Union

import numpy as np

from edgert.errors import InputError


def file_sha256(path: Union[str, "os.PathLike[str]"]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_arrays(path: Union[str, "os.PathLike[str]"]
                ) -> Union[np.ndarray, Dict[str, np.ndarray]]:
    """One array from a .npy, or {name: array} from a .npz; ``InputError`` otherwise.

    Pickled object arrays are refused (``allow_pickle=False``): loading a pickle runs code.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such input file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a .npy or .npz file ({exc})") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        return {k: data[k] for k in data.files}
