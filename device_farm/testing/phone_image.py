"""The file system the ADB simulator pretends to be a phone's.

A sandbox folder stands in for the phone: ``/data/local/tmp`` maps to
``<root>/data_local_tmp`` (where the farm deploys and runs), and the files a
probe reads (``/proc/cpuinfo``, ``/proc/meminfo``, ``/sys/devices/system/cpu``,
``/sys/class/thermal``) map to files written from a fixture of a real phone
model (``phones/*.json``); ``getprop`` is a small script reading the fixture's
properties. Everything else a command uses (sh, python3, timeout, taskset) is
the host's, so the farm's runner really runs.

Paths are mapped by rewriting the command text, longest prefix first, and
mapped back in the output so error messages read like the phone's.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Dict, List, Optional, Tuple

PHONES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "phones")
DEVICE_TMP = "/data/local/tmp"


def load_phone(name_or_path: str = "pixel7") -> Dict[str, object]:
    path = name_or_path if os.path.exists(name_or_path) else os.path.join(
        PHONES_DIR, f"{name_or_path}.json")
    with open(path) as f:
        return json.load(f)


class PhoneImage:
    """A phone's file system laid out under ``root``."""

    def __init__(self, root: str, phone: Dict[str, object], python_dir: Optional[str] = None):
        self.root = os.path.abspath(root)
        self.phone = phone
        self.tmp = os.path.join(self.root, "data_local_tmp")
        self.fixture = os.path.join(self.root, "fixture")
        self.bin = os.path.join(self.root, "bin")
        self.python_dir = python_dir or os.path.dirname(sys.executable)
        self.maps: List[Tuple[str, str]] = []

    def build(self) -> "PhoneImage":
        for d in (self.tmp, self.fixture, self.bin):
            os.makedirs(d, exist_ok=True)
        fx = self.fixture
        _write(os.path.join(fx, "cpuinfo"), str(self.phone["cpuinfo"]))
        _write(os.path.join(fx, "meminfo"), str(self.phone["meminfo"]))
        for i, cpu in enumerate(self.phone["cpus"]):
            d = os.path.join(fx, "cpu", f"cpu{i}", "cpufreq")
            os.makedirs(d, exist_ok=True)
            _write(os.path.join(d, "cpuinfo_max_freq"), f"{cpu['max_khz']}\n")
            _write(os.path.join(d, "scaling_max_freq"), f"{cpu['cap_khz']}\n")
            _write(os.path.join(d, "scaling_cur_freq"), f"{cpu['cur_khz']}\n")
        for i, zone in enumerate(self.phone["thermal"]):
            d = os.path.join(fx, "thermal", f"thermal_zone{i}")
            os.makedirs(d, exist_ok=True)
            _write(os.path.join(d, "type"), f"{zone['type']}\n")
            _write(os.path.join(d, "temp"), f"{zone['temp']}\n")
        props = os.path.join(fx, "build.prop")
        _write(props, "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.phone["props"].items())))
        getprop = os.path.join(self.bin, "getprop")
        # getprop KEY prints the value (empty if unset); getprop alone prints every [k]: [v]
        _write(getprop, "#!/bin/sh\nif [ $# -eq 0 ]; then cat %s; exit 0; fi\n"
                        "sed -n \"s/^\\[$1\\]: \\[\\(.*\\)\\]$/\\1/p\" %s\n"
               % (shlex.quote(props), shlex.quote(props)))
        os.chmod(getprop, 0o755)
        self.maps = sorted([
            (DEVICE_TMP, self.tmp),
            ("/proc/cpuinfo", os.path.join(fx, "cpuinfo")),
            ("/proc/meminfo", os.path.join(fx, "meminfo")),
            ("/sys/devices/system/cpu", os.path.join(fx, "cpu")),
            ("/sys/class/thermal", os.path.join(fx, "thermal")),
        ], key=lambda m: -len(m[0]))
        return self

    def to_host(self, text: str) -> str:
        """Device paths in a command or path -> sandbox paths."""
        for device, host in self.maps:
            text = text.replace(device, host)
        return text

    def to_device(self, text: str) -> str:
        """Sandbox paths in output -> device paths."""
        for device, host in sorted(self.maps, key=lambda m: -len(m[1])):
            text = text.replace(host, device)
        return text

    def env(self) -> Dict[str, str]:
        """The environment of a shell on the phone."""
        return {"PATH": f"{self.bin}:{self.python_dir}:/usr/bin:/bin",
                "HOME": self.tmp, "TMPDIR": self.tmp, "ANDROID_DATA": "/data",
                "LANG": "C.UTF-8"}


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
