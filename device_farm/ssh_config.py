"""OpenSSH client configuration for inventory boards: ``host = "jetson"`` may be an alias.

People reach their boards through ``~/.ssh/config`` (``Host jetson`` / ``HostName`` /
``User`` / ``IdentityFile`` / ``ProxyJump``), so an inventory entry may name the alias
and leave the rest out. paramiko reads that file (``paramiko.SSHConfig``, with
OpenSSH's matching and ``%h``/``%p`` tokens) but does not apply it by itself; this
fills the keys the inventory leaves out. A key the inventory sets wins. ``ProxyJump``
becomes the ``ssh -W`` ProxyCommand OpenSSH itself uses for it.
"""
from __future__ import annotations

import os
import shlex
from typing import Dict, Optional

from device_farm.errors import DeviceError

DEFAULT_PATH = "~/.ssh/config"


def apply_ssh_config(d: Dict[str, object], name: str, base_dir: str = ".") -> Dict[str, object]:
    """``d`` (one ssh [[device]] table) completed from the OpenSSH config, as a new dict."""
    given = d.get("ssh_config")
    path = os.path.expanduser(str(given or DEFAULT_PATH))
    if given and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base_dir, path))
    if not os.path.isfile(path):
        if given:
            raise DeviceError(f"device {name!r}: ssh_config {path} does not exist")
        return dict(d)
    try:
        import paramiko
    except ImportError:   # the transport says paramiko is missing when it is used
        return dict(d)
    try:
        cfg = paramiko.SSHConfig.from_path(path).lookup(str(d["host"]))
    except Exception as exc:
        raise DeviceError(f"device {name!r}: cannot read ssh config {path}: {exc}") from None
    out = dict(d)
    out["host"] = cfg.get("hostname", d["host"])
    if "port" not in d and "port" in cfg:
        out["port"] = _port(cfg["port"], name, path)
    if not d.get("user") and cfg.get("user"):
        out["user"] = cfg["user"]
    if not d.get("key_file"):
        keys = [os.path.expanduser(k) for k in cfg.get("identityfile", [])]
        found = [k for k in keys if os.path.isfile(k)]
        if found:
            out["key_file"] = found[0]
    if not d.get("known_hosts") and cfg.get("userknownhostsfile"):
        out["known_hosts"] = os.path.expanduser(cfg["userknownhostsfile"].split()[0])
    if not d.get("proxy_command"):
        proxy = _proxy(cfg, out)
        if proxy:
            out["proxy_command"] = proxy
    return out


def _port(value: object, name: str, path: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise DeviceError(f"device {name!r}: Port {value!r} in {path} is not a number") \
            from None


def _proxy(cfg: Dict[str, object], out: Dict[str, object]) -> Optional[str]:
    command = cfg.get("proxycommand")
    if command and str(command).lower() != "none":
        return str(command)
    jump = cfg.get("proxyjump")
    if not jump or str(jump).lower() == "none":
        return None
    return " ".join(_jump_command(str(jump), str(out["host"]), int(out.get("port") or 22)))


def _jump_command(jump: str, host: str, port: int):
    """``ssh -W host:port`` through the jump host(s): the last hop runs the -W, earlier
    hops go in -J, exactly as OpenSSH expands ProxyJump."""
    hops = [h.strip() for h in jump.split(",") if h.strip()]
    last, before = hops[-1], hops[:-1]
    cmd = ["ssh"]
    if before:
        cmd += ["-J", ",".join(before)]
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd += ["-W", target]
    dest, _, jump_port = last.rpartition(":") if last.count(":") == 1 else (last, "", "")
    if jump_port.isdigit():               # user@host:port is -J syntax, not a destination
        cmd += ["-p", jump_port]
    else:
        dest = last
    cmd.append(dest)
    return [shlex.quote(c) for c in cmd]
