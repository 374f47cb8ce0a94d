"""The errors of the device farm.

A ``DeviceError`` is an ``EdgertError``, so the CLI prints it instead of a
traceback; it lives here rather than in the runtime because only the farm raises it.
"""
from __future__ import annotations

from edgert.errors import EdgertError


class DeviceError(EdgertError):
    """A device or its transport failed (offline, timed out, dropped mid-run)."""
