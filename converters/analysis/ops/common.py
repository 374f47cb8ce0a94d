"""Helpers every op-family module uses: shapes that must be known, attributes."""
from __future__ import annotations

from typing import Optional, Tuple

from converters.analysis.graph import NodeView, TensorView


class UnknownShape(Exception):
    """A shape the formula needs is unknown; the message names the tensor."""


def shape_of(t: Optional[TensorView], what: str = "tensor") -> Tuple[int, ...]:
    if t is None:
        raise UnknownShape(what)
    if t.shape is None:
        raise UnknownShape(repr(t.name))
    return t.shape


def numel_of(t: Optional[TensorView], what: str = "tensor") -> int:
    n = 1
    for d in shape_of(t, what):
        n *= int(d)
    return n


def out_numel(node: NodeView, i: int = 0) -> int:
    return numel_of(node.output(i), f"output {i} of {node.name}")


def has_input(node: NodeView, i: int) -> bool:
    return node.input(i) is not None
