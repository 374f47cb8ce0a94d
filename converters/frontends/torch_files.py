"""PyTorch model files where an ONNX file could be: TorchScript, torch.export, pickles.

Users often hold a ``model.pt`` rather than code. What the file is follows from the
member names of its zip archive, read without unpickling anything:

* TorchScript (``torch.jit.save``): a ``code/`` tree; loaded by ``torch.jit.load``
  (TorchScript's own format, no pickled Python classes) and exported like a module.
  It does not record input shapes: ``input_shapes`` (CLI ``--input-shape``) are needed.
* a torch.export program (``torch.export.save``, ``.pt2``): ``models/model.json``;
  loaded by ``torch.export.load``, its sample inputs become the example inputs.
* a ``torch.save`` pickle (``data.pkl`` only): opened with the safe unpickler
  (``weights_only=True``). A state dict holds weights without the network, and a whole
  pickled ``nn.Module`` can only be rebuilt by running code named in the file, which
  edgert does not do on its own; both get an error saying what to give instead.
"""
from __future__ import annotations

import os
import zipfile
from typing import Any, List, Optional, Tuple

from converters.errors import ConversionError

def torch_file_kind(path: str) -> Optional[str]:
    """"torchscript", "exported_program", "pickle", or None (not a PyTorch zip file)."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    inner = ["/".join(n.split("/")[1:]) for n in names]   # drop the archive's root folder
    if any(n.startswith("code/") for n in inner) and "data.pkl" in inner:
        return "torchscript"
    if "models/model.json" in inner or any(n.startswith("models/") for n in inner):
        return "exported_program"
    if "data.pkl" in inner:
        return "pickle"
    return None


def load_torch_file(path: str) -> Tuple[Any, Optional[Tuple], str]:
    """(module, example inputs or None, name) for a PyTorch file; ConversionError otherwise."""
    kind = torch_file_kind(path)
    name = os.path.splitext(os.path.basename(path))[0]
    if kind is None:
        raise ConversionError(f"{path}: not a PyTorch model file")
    import torch

    if kind == "torchscript":
        try:
            return torch.jit.load(path, map_location="cpu"), None, name
        except Exception as exc:
            raise ConversionError(f"{path}: TorchScript file that torch.jit.load cannot "
                                  f"read: {type(exc).__name__}: {exc}") from exc
    if kind == "exported_program":
        try:
            ep = torch.export.load(path)
        except Exception as exc:
            raise ConversionError(f"{path}: torch.export file that torch.export.load cannot "
                                  f"read: {type(exc).__name__}: {exc}") from exc
        args, kwargs = ep.example_inputs or ((), {})
        if kwargs:
            raise ConversionError(f"{path}: the exported program takes keyword inputs "
                                  f"({', '.join(kwargs)}); export it with positional ones")
        return ep.module(), (tuple(args) or None), name
    _refuse_pickle(path, torch)
    raise AssertionError("unreachable")


def _refuse_pickle(path: str, torch) -> None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ConversionError(
            f"{path}: a pickled nn.Module (torch.save(model)); rebuilding it runs code the "
            f"file names, which edgert does not do by itself. Save it in a format that keeps "
            f"the network: torch.export.save(torch.export.export(model, example_inputs), "
            f"'model.pt2') or torch.jit.save(torch.jit.trace(model, x), 'model.pt'), or "
            f"give code: edgert convert mynet.py:build, where build() returns "
            f"torch.load(PATH, weights_only=False)") from None
    keys: List[str] = list(obj)[:5] if isinstance(obj, dict) else []
    raise ConversionError(
        f"{path}: holds {'a state dict' if keys else type(obj).__name__} "
        f"({', '.join(map(str, keys))}{', ...' if keys else ''}): weights without the "
        f"network. Give the network's code: edgert convert mynet.py:build, where build() "
        f"creates the model and loads this file (model.load_state_dict(torch.load(PATH)))")
