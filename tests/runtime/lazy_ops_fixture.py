"""Fills ``tests.runtime.test_op_registry.LAZY`` when that registry is first read (the
test checks it is not imported before)."""
from __future__ import annotations

from tests.runtime.test_op_registry import LAZY


@LAZY.register("Lazy")
def lazy() -> str:
    return "lazy"
