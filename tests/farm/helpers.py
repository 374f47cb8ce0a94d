"""Helpers shared by the device-farm tests."""
from __future__ import annotations

import os
import shutil
import sys

from device_farm.inventory import DeviceSpec, Inventory, host_device

HOSTILE_NAME = "it's a \"model\"; touch INJECTED $(touch INJECTED2).onnx"


def board_spec(server, name: str = "board", port=None, **kw) -> DeviceSpec:
    """The sshd as a board: the test venv's Python plays the board's python3."""
    kw.setdefault("workdir", os.path.join(server.dir, f"work-{name}"))
    if port and "known_hosts" not in kw:  # through a proxy: the key is known under its port
        kw["known_hosts"] = server.write_known_hosts(
            os.path.join(server.dir, f"known_hosts_{port}"), port=port)
    return DeviceSpec(name=name, transport="ssh", host="127.0.0.1", port=port or server.port,
                      user=server.user, key_file=server.user_key,
                      known_hosts=kw.pop("known_hosts", server.known_hosts),
                      python=sys.executable, **kw)


def board_toml(server, workdir) -> str:
    """The sshd as a board, as an inventory's ``[[device]]`` table (TOML text)."""
    return (f'[[device]]\nname = "board"\ntransport = "ssh"\nhost = "127.0.0.1"\n'
            f'port = {server.port}\nuser = "{server.user}"\nkey_file = "{server.user_key}"\n'
            f'known_hosts = "{server.known_hosts}"\npython = "{sys.executable}"\n'
            f'workdir = "{workdir}"\n')


def phone_spec(phone, adb_server, name: str = "pixel", **kw) -> DeviceSpec:
    return DeviceSpec(name=name, transport="adb", serial=phone.address,
                      adb_server=adb_server.address, **kw)


def inventory(*specs: DeviceSpec) -> Inventory:
    return Inventory(list(specs) + [host_device()], "test")


def pids_matching(marker: str):
    """PIDs of processes whose command line contains ``marker`` (this host)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        out.append(int(entry))
            except OSError:
                pass
    return out


def copy_model(src: str, dst_dir, name: str) -> str:
    dst = os.path.join(str(dst_dir), name)
    shutil.copyfile(src, dst)
    return dst

