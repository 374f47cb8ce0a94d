"""The device inventory: ``devices.toml``, one ``[[device]]`` table per device.

Every table is checked against the schema in ``inventory_schema`` before
anything connects: types (booleans are booleans), ranges, unique names, keys
known and meant for the device's transport (a typo such as
``trust_new_hostkey`` must not silently fall back to a default). All problems
are reported at once, each with its device and key. Paths are resolved against
the file's folder. With no file the inventory holds just ``host``, the local
machine, so the farm always has a device. See docs/DEVICES.md for the format.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from device_farm.errors import DeviceError
from device_farm.inventory_schema import duplicate_problems, spec_problems, table_problems

HOST_NAME = "host"
ENV_VAR = "EDGERT_DEVICES"
DEFAULT_FILE = "devices.toml"

_DEFAULT_WORKDIR = {"adb": "/data/local/tmp/edgert", "ssh": "/tmp/edgert-farm"}


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


_PATH_KEYS = ("key_file", "known_hosts", "ssh_config")


class InventoryError(DeviceError):
    """The inventory has problems (each named with its device and key)."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        head = (f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''} "
                "in the device inventory:")
        super().__init__("\n  ".join([head] + self.problems))


def device_from_dict(d: Dict[str, object], base_dir: str = ".") -> DeviceSpec:
    """Build one device from a table the schema accepted (``table_problems`` is empty)."""
    name = str(d["name"])
    if d.get("transport") == "ssh":   # host may be an alias of the OpenSSH client config
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
    """The devices of a farm. Built in code or by ``load_inventory``; either way every
    device is checked against the schema (an inventory that is wrong never connects)."""

    devices: List[DeviceSpec]
    source: Optional[str] = None

    def __post_init__(self) -> None:
        problems = [p for i, d in enumerate(self.devices) for p in spec_problems(asdict(d), i)]
        problems += duplicate_problems([d.name for d in self.devices])
        if problems:
            raise InventoryError(self.source or "inventory", problems)

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
            twice = sorted({n for n in names if list(names).count(n) > 1})
            if twice:
                raise DeviceError(f"device(s) named twice in the selection: {', '.join(twice)}")
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
    if not os.path.isfile(path):
        raise DeviceError(f"{path}: no such inventory file")
    data = _read_toml(path)
    extra = sorted(set(data) - {"device"})
    if extra:
        raise InventoryError(path, [f"unknown top-level key(s) {', '.join(extra)}; devices "
                                    "go in [[device]] tables"])
    tables = data.get("device", [])
    if not isinstance(tables, list):
        raise InventoryError(path, ["'device' must be an array of tables ([[device]])"])
    problems = [p for i, t in enumerate(tables) for p in table_problems(t, i)]
    problems += duplicate_problems([t.get("name") for t in tables if isinstance(t, dict)])
    if problems:
        raise InventoryError(path, problems)
    base = os.path.dirname(os.path.abspath(path))
    devices = []
    for t in tables:
        try:
            devices.append(device_from_dict(dict(t), base))
        except DeviceError as exc:   # the ssh config named by the table is wrong
            problems.append(str(exc))
    if problems:
        raise InventoryError(path, problems)
    return Inventory(devices, path)


def _read_toml(path: str) -> Dict[str, object]:
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DeviceError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x});"
                          " TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeviceError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise DeviceError(f"{path}: cannot read the inventory: {exc.strerror}") from None
