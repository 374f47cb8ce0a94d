"""Transports by name, imported only when a device uses them (paramiko and
adbutils stay unimported for a farm of local devices).

Adding a transport is one module with a ``Transport`` subclass and one row here
(or a ``register_transport`` call, for transports that live elsewhere).
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Dict, Tuple

from device_farm.transports.base import (
    CommandTimeout, HostKeyError, RemoteCommandError, ShellResult, TransientTransportError,
    Transport, TransportError, quote_argv)

__all__ = ["CommandTimeout", "HostKeyError", "RemoteCommandError", "ShellResult",
           "TransientTransportError", "Transport", "TransportError", "quote_argv",
           "open_transport", "register_transport", "transport_kinds"]

_TRANSPORTS: Dict[str, Tuple[str, str]] = {
    "local": ("device_farm.transports.local", "LocalTransport"),
    "ssh": ("device_farm.transports.ssh", "SSHTransport"),
    "adb": ("device_farm.transports.adb", "ADBTransport"),
}
# the package a transport needs (installed by the `farm` extra)
_NEEDS = {"ssh": "paramiko", "adb": "adbutils"}


def register_transport(kind: str, module: str, cls: str) -> None:
    """Add a transport ``kind`` (``devices.toml``: ``transport = kind``) implemented by
    ``module.cls``; a kind registered twice is an error, not a silent replacement."""
    if kind in _TRANSPORTS and _TRANSPORTS[kind] != (module, cls):
        raise ValueError(f"transport {kind!r} is registered already ({_TRANSPORTS[kind]})")
    _TRANSPORTS[kind] = (module, cls)


def transport_kinds() -> Tuple[str, ...]:
    return tuple(_TRANSPORTS)


def open_transport(spec) -> Transport:
    """The transport for a device spec (no connection is made until first use)."""
    if spec.transport not in _TRANSPORTS:
        raise TransportError(f"device {spec.name!r}: unknown transport {spec.transport!r}; "
                             f"known: {', '.join(_TRANSPORTS)}")
    need = _NEEDS.get(spec.transport)
    if need is not None:
        try:
            found = importlib.util.find_spec(need) is not None
        except ValueError:          # a module object without a spec (tests block it so)
            found = False
        if not found:
            raise TransportError(f"device {spec.name!r}: {spec.transport} devices need the "
                                 f"{need!r} package: pip install 'edgert[farm]'")
    module, cls = _TRANSPORTS[spec.transport]
    return getattr(importlib.import_module(module), cls)(spec)
