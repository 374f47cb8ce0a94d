"""The exceptions edgert raises.

Every failure a user can cause (a bad file, a bad feed, a missing engine, an op a
target cannot run) is an ``EdgertError`` with a message that names the problem,
so the CLI can print it and exit non-zero instead of showing a traceback. Engine
exceptions are wrapped, never swallowed: the engine's own message is kept.
"""
from __future__ import annotations

from typing import Iterable, Optional


class EdgertError(Exception):
    """Base class of every error edgert raises on purpose."""


class ModelFileError(EdgertError):
    """The model file is missing, truncated, corrupt or not of the format it claims."""


class EngineUnavailableError(EdgertError):
    """The engine needed for a model is not installed (or cannot run it)."""


class InputError(EdgertError):
    """A feed is missing, unknown, or of the wrong shape or dtype."""


class UnsupportedOptionError(EdgertError):
    """An option (threads, precision, ...) the chosen engine cannot honor."""


class EngineError(EdgertError):
    """The engine failed while loading or running a model; its message is kept."""


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


class TableError(EdgertError):
    """A quantization or sparsity table is invalid or does not match the graph."""


class DeviceError(EdgertError):
    """A device or its transport failed (offline, timed out, dropped mid-run)."""
