"""The device inventory: ``devices.toml``, one ``[[device]]`` table per device.

Every key is checked (an unknown key is an error naming the device and the
key, since a typo such as ``trust_new_hostkey`` must not silently fall back to a
default), and paths are resolved against the file's folder. With no file the
inventory holds just ``host``, the local machine, so the farm always has a
device. See docs/DEVICES.md for the format.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Sequence

from device_farm.errors import DeviceError

HOST_NAME = "host"
ENV_VAR = "EDGERT_DEVICES"
DEFAULT_FILE = "devices.toml"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MASK_RE = re.compile(r"^(0x)?[0-9a-fA-F]+$")
_DEFAULT_WORKDIR = {"adb": "/data/local/tmp/edgert", "ssh": "/tmp/edgert-farm"}
_REQUIRED = {"ssh": ("host",), "adb": ("serial",), "local": ()}


@dataclass
class DeviceSpec:
    """One device as the inventory describes it (nothing here is probed)."""

    name: str
    transport: str
    tags: List[str] = field(default_factory=list)
    cpu_mask: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    workdir: Optional[str] = None
    python: str = "python3"
    runners: Dict[str, str] = field(default_factory=dict)
    binaries: Dict[str, object] = field(default_factory=dict)
    # ssh
    host: Optional[str] = None
    port: int = 22
    user: Optional[str] = None
    key_file: Optional[str] = None
    known_hosts: Optional[str] = None
    ssh_config: Optional[str] = None      # OpenSSH client config; default ~/.ssh/config
    proxy_command: Optional[str] = None   # local command whose stdio reaches the board
    trust_new_host_key: bool = False
    connect_timeout: float = 10.0
    keepalive: int = 15
    # adb
    serial: Optional[str] = None
    adb_server: Optional[str] = None
    adb_connect: bool = False

    def __post_init__(self) -> None:
        if not self.workdir:
            self.workdir = _DEFAULT_WORKDIR.get(self.transport) or _host_workdir(self.name)

    @property
    def address(self) -> str:
        if self.transport == "ssh":
            return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"
        if self.transport == "adb":
            return f"{self.serial} @ {self.adb_server or '127.0.0.1:5037'}"
        return "localhost"

    def public_dict(self) -> Dict[str, object]:
        """What a result row records about the device's configuration (no key paths)."""
        keep = ("name", "transport", "tags", "cpu_mask", "workdir", "python", "runners")
        d = {k: getattr(self, k) for k in keep}
        d["address"] = self.address
        d["env"] = dict(self.env)
        return d


def _host_workdir(name: str) -> str:
    base = os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgert")
    return os.path.join(base, "farm", name)


def host_device() -> DeviceSpec:
    """The local machine as a device."""
    return DeviceSpec(name=HOST_NAME, transport="local", tags=["host"], python=sys.executable)


_FIELDS = {f.name for f in fields(DeviceSpec)}
_PATH_KEYS = ("key_file", "known_hosts", "ssh_config")


def device_from_dict(d: Dict[str, object], base_dir: str = ".") -> DeviceSpec:
    """Build and check one device table; errors name the device and the key."""
    name = d.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DeviceError(f"device {name!r}: name must be 1-64 letters, digits, '_', '.', '-'")
    unknown = sorted(set(d) - _FIELDS)
    if unknown:
        raise DeviceError(f"device {name!r}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(_FIELDS))}")
    kind = d.get("transport")
    if kind not in _REQUIRED:
        raise DeviceError(f"device {name!r}: transport must be one of "
                          f"{', '.join(_REQUIRED)}, not {kind!r}")
    missing = [k for k in _REQUIRED[kind] if not d.get(k)]
    if missing:
        raise DeviceError(f"device {name!r}: a {kind} device needs {', '.join(missing)}")
    mask = d.get("cpu_mask")
    if mask is not None and (not isinstance(mask, str) or not _MASK_RE.match(mask)):
        raise DeviceError(f"device {name!r}: cpu_mask must be a hex string such as 'f0', "
                          f"not {mask!r}")
    for key in ("tags",):
        if key in d and not (isinstance(d[key], list) and all(isinstance(t, str) for t in d[key])):
            raise DeviceError(f"device {name!r}: {key} must be a list of strings")
    for key in ("env", "runners"):
        if key in d and not (isinstance(d[key], dict)
                             and all(isinstance(v, str) for v in d[key].values())):
            raise DeviceError(f"device {name!r}: {key} must be a table of strings")
    if kind == "ssh":   # host may be an alias of the OpenSSH client config
        from device_farm.ssh_config import apply_ssh_config

        d = apply_ssh_config(d, name, base_dir)
    spec = DeviceSpec(**d)  # type: ignore[arg-type]
    for key in _PATH_KEYS:
        value = getattr(spec, key)
        if value:
            setattr(spec, key, _resolve(value, base_dir))
    spec.binaries = {k: ([_resolve(p, base_dir) for p in v] if isinstance(v, list)
                         else _resolve(str(v), base_dir)) for k, v in spec.binaries.items()}
    return spec


def _resolve(path: str, base_dir: str) -> str:
    """Expand ~ and make a relative host path relative to the inventory's folder.
    ``device:/abs/path`` names a file already on the device and is kept as is."""
    if path.startswith("device:"):
        return path
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


@dataclass
class Inventory:
    devices: List[DeviceSpec]
    source: Optional[str] = None

    def names(self) -> List[str]:
        return [d.name for d in self.devices]

    def get(self, name: str) -> DeviceSpec:
        for d in self.devices:
            if d.name == name:
                return d
        if name == HOST_NAME:
            return host_device()
        raise DeviceError(f"no device {name!r} in {self.source or 'the inventory'}; "
                          f"known: {', '.join(self.names() + [HOST_NAME])}")

    def select(self, names: Optional[Sequence[str]] = None,
               tags: Optional[Sequence[str]] = None) -> List[DeviceSpec]:
        """Devices by name, or all carrying every given tag, or all of them."""
        if names:
            chosen = [self.get(n) for n in names]
        else:
            chosen = list(self.devices) or [host_device()]
        if tags:
            chosen = [d for d in chosen if set(tags) <= set(d.tags)]
            if not chosen:
                raise DeviceError(f"no device carries the tag(s) {', '.join(tags)}")
        return chosen


def load_inventory(path: Optional[str] = None) -> Inventory:
    """Read ``path``, else $EDGERT_DEVICES, else ./devices.toml; else only ``host``."""
    path = path or os.environ.get(ENV_VAR) or (DEFAULT_FILE if os.path.exists(DEFAULT_FILE)
                                               else None)
    if path is None:
        return Inventory([host_device()], None)
    if not os.path.exists(path):
        raise DeviceError(f"{path}: no such inventory file")
    data = _read_toml(path)
    tables = data.get("device", [])
    extra = sorted(set(data) - {"device"})
    if extra:
        raise DeviceError(f"{path}: unknown top-level key(s) {', '.join(extra)}; devices go "
                          "in [[device]] tables")
    if not isinstance(tables, list):
        raise DeviceError(f"{path}: 'device' must be an array of tables ([[device]])")
    base = os.path.dirname(os.path.abspath(path))
    devices = [device_from_dict(dict(t), base) for t in tables]
    names = [d.name for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DeviceError(f"{path}: device name(s) used twice: {', '.join(dupes)}")
    return Inventory(devices, path)


def _read_toml(path: str) -> Dict[str, object]:
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise DeviceError(f"{path}: not valid TOML: {exc}") from None
