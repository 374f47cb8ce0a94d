"""The exceptions edgert raises.

Every failure a user can cause (a bad file, a bad feed, a missing engine, an op a
target cannot run) is an ``EdgertError`` with a message that names the problem,
so the CLI can print it and exit non-zero instead of showing a traceback. Engine
exceptions are wrapped, never swallowed: the engine's own message is kept.

The libraries above the runtime subclass ``EdgertError`` in their own packages:
``converters.errors`` (``ConversionError``, ``UnsupportedOpError``),
``quant_tables.errors`` (``TableError``), ``device_farm.errors`` (``DeviceError``).
"""
from __future__ import annotations


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


class QuantizationError(EdgertError, ValueError):
    """Quantization parameters that define no affine mapping (a zero, negative or
    non-finite scale)."""


class RunTimeoutError(EngineError):
    """A run given a deadline (``Session.run(..., timeout=)``) did not finish in time."""
