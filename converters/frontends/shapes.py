"""Input shapes as users write them (``input=1x3x224x224``, ``x=Nx3x224x224``)
and the checks that tie them to a model's inputs."""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from edgert.errors import InputError

Dim = Union[int, str]
Shape = Tuple[Dim, ...]


def parse_shape(text: str) -> Shape:
    """``"1x3x224x224"`` -> (1, 3, 224, 224); a non-numeric dim stays a symbolic name."""
    dims = []
    for part in text.lower().replace(",", "x").split("x"):
        part = part.strip()
        if not part:
            raise InputError(f"bad shape {text!r}: empty dim (write e.g. 1x3x224x224)")
        if part.isdigit():
            if int(part) < 1:
                raise InputError(f"bad shape {text!r}: dims must be at least 1")
            dims.append(int(part))
        elif part.isidentifier():
            dims.append(part)
        else:
            raise InputError(f"bad shape {text!r}: {part!r} is neither a size nor a name")
    return tuple(dims)


def parse_input_shapes(items: Iterable[str]) -> Dict[str, Shape]:
    """``["input=1x3x224x224", "mask=1x16"]`` -> {name: shape}."""
    out: Dict[str, Shape] = {}
    for item in items:
        name, sep, shape = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"bad --input-shape {item!r}: write NAME=1x3x224x224")
        if name.strip() in out:
            raise InputError(f"--input-shape gives {name.strip()!r} twice")
        out[name.strip()] = parse_shape(shape)
    return out


def normalize_input_shapes(shapes: Optional[Mapping[str, Sequence[Dim]]]) -> Dict[str, Shape]:
    if not shapes:
        return {}
    if isinstance(shapes, (list, tuple)):
        return parse_input_shapes(shapes)
    out = {}
    for name, shape in shapes.items():
        out[name] = parse_shape(shape) if isinstance(shape, str) else tuple(shape)
    return out


def check_known(shapes: Mapping[str, object], known: Sequence[str],
                what: str = "input shape") -> None:
    """Every named input must exist; the error lists the model's inputs."""
    unknown = [n for n in shapes if n not in known]
    if unknown:
        raise InputError(f"{what} given for unknown input(s) {unknown}; "
                         f"model inputs: {list(known)}")


def concrete(shape: Sequence[Dim], fill: int = 1) -> Tuple[int, ...]:
    return tuple(d if isinstance(d, int) else fill for d in shape)
