"""Input values the user fixes: ``--input sr=16000`` or ``--input state=state.npy``.

Some inputs are not data but settings: a sample rate that picks a branch, a
recurrent state, a sequence length. Random values are wrong for them (Silero VAD
takes the other ``If`` branch on a random ``sr``), so the user gives them once and
every check uses them: the torch export's example inputs, verification's input
sets and the calibration feeds (``convert(input_values=...)``).

A value is a number (``16000``, ``0.5``, ``true``), or a ``.npy`` file. It is cast
to the input's dtype (a fraction for an integer input is an error) and shaped to
the input: a single number fills a fixed shape (``[1]``, ``[]``), an array must fit
the input's fixed dims.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from edgert.errors import InputError


def parse_value(text: str) -> Any:
    """``"16000"`` -> int64 16000, ``"0.5"`` -> float32 0.5, ``"true"`` -> True, a
    ``.npy`` path -> its array."""
    t = text.strip()
    if t.lower().endswith(".npy"):
        from edgert.files import load_arrays

        arr = load_arrays(t)
        if not isinstance(arr, np.ndarray):
            raise InputError(f"{t}: expected one array")
        return arr
    if t.lower() in ("true", "false"):
        return np.array(t.lower() == "true")
    try:
        return np.array(int(t), np.int64)
    except ValueError:
        pass
    try:
        return np.array(float(t), np.float32)
    except ValueError:
        raise InputError(f"bad input value {text!r}: write a number (16000, 0.5, true) or a "
                         f".npy file") from None


def parse_input_values(items: Iterable[str]) -> Dict[str, Any]:
    """``["sr=16000", "state=s.npy"]`` -> {name: value} (CLI ``--input``)."""
    out: Dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise InputError(f"bad --input {item!r}: write NAME=VALUE or NAME=FILE.npy")
        if name in out:
            raise InputError(f"--input gives {name!r} twice")
        out[name] = parse_value(value)
    return out


def normalize_values(values: Optional[Mapping[str, Any]]) -> Dict[str, np.ndarray]:
    """{name: array} from what ``convert(input_values=...)`` accepts (numbers, arrays,
    tensors, value strings)."""
    out: Dict[str, np.ndarray] = {}
    for name, v in (values or {}).items():
        if isinstance(v, str):
            v = parse_value(v)
        elif hasattr(v, "detach"):                  # a torch tensor
            v = v.detach().cpu().numpy()
        arr = np.asarray(v)
        if arr.dtype == np.float64:          # Python floats: the float32 models take
            arr = arr.astype(np.float32)
        if arr.dtype == object:
            raise InputError(f"input value for {name!r}: not a number or an array")
        out[str(name)] = arr
    return out


def fit_value(name: str, value: np.ndarray, shape: Sequence, dtype: np.dtype) -> np.ndarray:
    """``value`` cast to ``dtype`` and shaped to ``shape`` (dynamic dims: None, str,
    or a negative number), or an InputError saying why it does not fit."""
    dtype = np.dtype(dtype)
    arr = np.asarray(value)
    if dtype.kind in "iub" and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"input {name!r} is {dtype.name}; the value given has fractions")
    if dtype == np.bool_ and arr.dtype != np.bool_ and np.any((arr != 0) & (arr != 1)):
        raise InputError(f"input {name!r} is bool; give 0/1 or true/false")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise InputError(f"input {name!r} is {dtype.name}; the value {arr.min()}.."
                             f"{arr.max()} does not fit")
    arr = arr.astype(dtype)
    dims = [d if isinstance(d, int) and d >= 0 else None for d in shape]
    if arr.ndim == len(dims):
        bad = [i for i, (d, a) in enumerate(zip(dims, arr.shape)) if d is not None and d != a]
        if bad:
            raise InputError(f"input {name!r} has shape {_fmt(dims)}; the value given has "
                             f"shape {_fmt(arr.shape)}")
        return arr
    if arr.size == 1 and all(d is not None for d in dims):
        return np.full(tuple(dims), arr.reshape(()), dtype=dtype)
    raise InputError(f"input {name!r} has shape {_fmt(dims)} (rank {len(dims)}); the value "
                     f"given has shape {_fmt(arr.shape)}")


def fit_values(values: Mapping[str, np.ndarray], specs: Sequence[Tuple[str, Sequence, Any]]
               ) -> Dict[str, np.ndarray]:
    """Every value fitted to its input of ``specs`` ((name, shape, dtype) per input); a
    name the model does not have is an InputError listing the inputs."""
    by_name = {n: (s, t) for n, s, t in specs}
    unknown = [n for n in values if n not in by_name]
    if unknown:
        raise InputError(f"input value given for unknown input(s) {unknown}; model inputs: "
                         f"{list(by_name)}")
    return {n: fit_value(n, v, *by_name[n]) for n, v in values.items()}


def _fmt(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims) or "scalar"

