"""The errors of the conversion flow.

They are ``EdgertError``s, so the CLI prints them instead of a traceback; they live
here rather than in the runtime because only the converters raise them.
"""
from __future__ import annotations

from typing import Iterable, Optional

from edgert.errors import EdgertError


class ConversionError(EdgertError):
    """A conversion step failed (front-end, pass, backend, verification)."""


class UnsupportedOpError(ConversionError):
    """A node whose op the target cannot take: names the node, its op and the target."""

    def __init__(self, node: str, op_type: str, target: str, reason: str = "",
                 supported: Optional[Iterable[str]] = None, hint: str = "") -> None:
        self.node, self.op_type, self.target = node, op_type, target
        self.reason, self.hint = reason, hint
        self.supported = sorted(supported) if supported is not None else None
        known = self.supported is not None and op_type in self.supported
        msg = (f"{target}: node {node!r} has op {op_type!r}, which {target} cannot take"
               + (" in this form" if known else ""))
        if reason:
            msg += f" ({reason})"
        if hint:
            msg += f". {hint}"
        if self.supported and not known and not hint:   # else the list is noise
            msg += f". Supported ops: {', '.join(self.supported)}"
        super().__init__(msg)
