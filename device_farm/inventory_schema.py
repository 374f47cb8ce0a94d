"""The schema of a ``[[device]]`` table: every key's type, range and transport.

Why a schema and not checks scattered over the code that uses each key: a value
of the wrong type used to travel until something deep down tripped on it
(``port = "abc"`` in paramiko, ``host = 2130706433`` in ``getaddrinfo``), or
worse, did not trip at all (``trust_new_host_key = "false"`` is a true string,
so an unknown host key was accepted; ``port = 70000`` connected to 4464).
Here every key is checked before anything connects, booleans must be booleans,
and every problem of every device is collected and reported at once, each named
with its device and key.

A key is one row of ``KEYS``: its check, the transports it applies to, and
whether those transports require it. Adding a key is one row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MASK_RE = re.compile(r"^(0x)?[0-9a-fA-F]+$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:%\[\]-]+$")
_BINARY_KEYS = ("benchmark_model", "mnn_benchmark", "mnn_libs")
_FORMAT_KEYS = ("tflite", "mnn", "onnx", "*")

#: a check returns None when the value is fine, else what is wrong with it
Check = Callable[[object], Optional[str]]


def _kind(v: object) -> str:
    """How a value reads in a message: its TOML type."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(v), type(v).__name__)


def _shown(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def string(pattern: Optional["re.Pattern[str]"] = None, what: str = "",
           empty: bool = False) -> Check:
    def check(v: object) -> Optional[str]:
        if not isinstance(v, str):
            return f"must be a string, not {_shown(v)} ({_kind(v)})"
        if not v:
            return None if empty else "must not be empty"
        if "\n" in v or "\0" in v:
            return "must be one line"
        if pattern is not None and not pattern.match(v):
            return f"must be {what}, not {_shown(v)}"
        return None
    return check


def integer(lo: int, hi: int) -> Check:
    def check(v: object) -> Optional[str]:
        if not _is_int(v):
            return f"must be an integer from {lo} to {hi}, not {_shown(v)} ({_kind(v)})"
        if not lo <= v <= hi:  # type: ignore[operator]
            return f"must be from {lo} to {hi}, not {v}"
        return None
    return check


def number(lo: float, hi: float) -> Check:
    def check(v: object) -> Optional[str]:
        if not _is_number(v):
            return f"must be a number of seconds, not {_shown(v)} ({_kind(v)})"
        if not lo < v <= hi:  # type: ignore[operator]
            return f"must be more than {lo:g} and at most {hi:g}, not {v}"
        return None
    return check


def boolean(v: object) -> Optional[str]:
    if not isinstance(v, bool):
        hint = " (write true or false without quotes)" if isinstance(v, str) else ""
        return f"must be true or false, not {_shown(v)} ({_kind(v)}){hint}"
    return None


def string_list(v: object) -> Optional[str]:
    if not isinstance(v, list) or not all(isinstance(t, str) and t for t in v):
        return f"must be an array of non-empty strings, not {_shown(v)}"
    return None


def string_table(keys: Optional[Sequence[str]] = None, key_re=None, key_what: str = "",
                 values: Optional[Callable[[], Sequence[str]]] = None) -> Check:
    def check(v: object) -> Optional[str]:
        if not isinstance(v, dict):
            return f"must be a table of strings, not {_shown(v)} ({_kind(v)})"
        for k, x in v.items():
            if keys is not None and k not in keys:
                return f"has an unknown key {k!r}; known: {', '.join(keys)}"
            if key_re is not None and not key_re.match(k):
                return f"key {k!r} is not {key_what}"
            if not isinstance(x, str):
                return f"{k} must be a string, not {_shown(x)} ({_kind(x)})"
            if values is not None and x not in values():
                return f"{k} = {x!r} is not one of {', '.join(values())}"
        return None
    return check


def binaries(v: object) -> Optional[str]:
    if not isinstance(v, dict):
        return f"must be a table ([device.binaries]), not {_shown(v)} ({_kind(v)})"
    for k, x in v.items():
        if k not in _BINARY_KEYS:
            return f"has an unknown key {k!r}; known: {', '.join(_BINARY_KEYS)}"
        if k == "mnn_libs" and isinstance(x, list):
            if not all(isinstance(p, str) and p for p in x):
                return f"mnn_libs must be paths (strings), not {_shown(x)}"
        elif not isinstance(x, str) or not x:
            return f"{k} must be a path (a string), not {_shown(x)} ({_kind(x)})"
    return None


def host_port(v: object) -> Optional[str]:
    """An adb server: ``host:port`` (or ``port``)."""
    if not isinstance(v, str):
        return f"must be \"host:port\" (a string), not {_shown(v)} ({_kind(v)})"
    host, sep, port = v.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535 or (sep and not host):
        return f"must be \"host:port\" with a port from 1 to 65535, not {_shown(v)}"
    return None


def workdir(v: object) -> Optional[str]:
    problem = string()(v)
    if problem:
        return problem
    if not str(v).startswith("/"):
        return f"must be an absolute path, not {_shown(v)}"
    return None


def _transports() -> Sequence[str]:
    from device_farm.transports import transport_kinds

    return transport_kinds()


def _runners() -> Sequence[str]:
    from device_farm.runners import runner_names

    return runner_names()


def transport_name(v: object) -> Optional[str]:
    if v not in _transports():
        return f"must be one of {', '.join(_transports())}, not {_shown(v)}"
    return None


ALL = ("local", "ssh", "adb")


@dataclass(frozen=True)
class Key:
    check: Check
    transports: Tuple[str, ...] = ALL
    required: bool = False


KEYS: Dict[str, Key] = {
    "name": Key(string(NAME_RE, "1-64 letters, digits, '_', '.', '-'"), required=True),
    "transport": Key(transport_name, required=True),
    "tags": Key(string_list),
    "cpu_mask": Key(string(_MASK_RE, "a hex string such as 'f0'")),
    "env": Key(string_table(key_re=_ENV_RE, key_what="an environment variable name")),
    "workdir": Key(workdir),
    "python": Key(string(empty=True)),
    "runners": Key(string_table(keys=_FORMAT_KEYS, values=_runners)),
    "binaries": Key(binaries),
    "host": Key(string(_HOST_RE, "a host name, an address or an ssh config alias"),
                ("ssh",), required=True),
    "port": Key(integer(1, 65535), ("ssh",)),
    "user": Key(string(), ("ssh",)),
    "key_file": Key(string(), ("ssh",)),
    "known_hosts": Key(string(), ("ssh",)),
    "ssh_config": Key(string(), ("ssh",)),
    "proxy_command": Key(string(), ("ssh",)),
    "trust_new_host_key": Key(boolean, ("ssh",)),
    "connect_timeout": Key(number(0, 600), ("ssh",)),
    "keepalive": Key(integer(0, 3600), ("ssh",)),
    "serial": Key(string(), ("adb",), required=True),
    "adb_server": Key(host_port, ("adb",)),
    "adb_connect": Key(boolean, ("adb",)),
}


def _a(word: str) -> str:
    """The article as the word is spoken: an adb, an ssh (es-es-aitch), a local."""
    return "an" if word[:1] in "aeiou" or word == "ssh" else "a"


def table_problems(d: object, index: int) -> List[str]:
    """Every problem of one ``[[device]]`` table, each naming the device and the key."""
    if not isinstance(d, dict):
        return [f"device #{index + 1}: must be a table ([[device]]), not {_shown(d)}"]
    name = d.get("name")
    who = f"device {name!r}" if isinstance(name, str) and name else f"device #{index + 1}"
    problems = []
    kind = d.get("transport")
    for key in sorted(set(d) - set(KEYS)):
        problems.append(f"{who}: unknown key {key!r}; known: {', '.join(sorted(KEYS))}")
    for key, spec in KEYS.items():
        if key not in d:
            if spec.required and (kind in spec.transports or key in ("name", "transport")):
                problems.append(f"{who}: {key}: missing" + (
                    f" ({_a(str(kind))} {kind} device needs it)" if kind in ALL and key not in
                    ("name", "transport") else ""))
            continue
        if isinstance(kind, str) and kind in ALL and kind not in spec.transports:
            problems.append(f"{who}: {key}: applies to {' and '.join(spec.transports)} "
                            f"devices, not to {_a(kind)} {kind} device")
            continue
        problem = spec.check(d[key])
        if problem:
            problems.append(f"{who}: {key}: {problem}")
    return problems


def spec_problems(values: Dict[str, object], index: int = 0) -> List[str]:
    """Problems of a DeviceSpec built in code (its fields as a dict; None = unset)."""
    kind = values.get("transport")
    given = {k: v for k, v in values.items()
             if v is not None and k in KEYS
             and (kind not in ALL or kind in KEYS[k].transports)}
    return table_problems(given, index)


def duplicate_problems(names: Sequence[object]) -> List[str]:
    seen, dupes = set(), []
    for n in names:
        if n in seen and n not in dupes:
            dupes.append(n)
        seen.add(n)
    return [f"device {n!r}: name: used by more than one device" for n in dupes]
