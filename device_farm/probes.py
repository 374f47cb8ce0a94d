"""What a device is (arch, SoC/CPU, cores, frequencies, memory, OS) and what
state it is in (CPU frequencies, thermal zones), read with one shell call each.

One POSIX-sh script per question, with ``@@section`` markers, so probing costs
one round trip on any transport and works on toybox (Android), busybox and
coreutils alike. Parsing is plain Python on the captured text, so it is tested
on fixture text from devices that are not here.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from device_farm.transports.base import Transport

_PROPS = ("ro.product.manufacturer", "ro.product.model", "ro.product.device",
          "ro.build.version.release", "ro.build.version.sdk", "ro.product.cpu.abi",
          "ro.soc.manufacturer", "ro.soc.model", "ro.board.platform", "ro.hardware")

# Builtins only (read, echo): no process per file. The script runs twice per job, and
# `$(cat f)` forked two processes for each of ~40 files of a phone (0.17 s a call on the
# simulated Pixel 7, against 0.05 s now).
_STATE_SCRIPT = r"""
echo @@uptime
{ read u _ < /proc/uptime && echo "$u"; } 2>/dev/null
echo @@cpufreq
for d in /sys/devices/system/cpu/cpu[0-9]*; do
  f=$d/cpufreq
  [ -d "$f" ] || continue
  c=- m=- x=-
  { read c < "$f/scaling_cur_freq"; } 2>/dev/null
  { read m < "$f/scaling_max_freq"; } 2>/dev/null
  { read x < "$f/cpuinfo_max_freq"; } 2>/dev/null
  echo "${d##*/} $c $m $x"
done
echo @@thermal
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] || continue
  t=- y=
  { read t < "$z/temp"; } 2>/dev/null
  { read y < "$z/type"; } 2>/dev/null
  echo "${z##*/} $t $y"
done
"""

_INFO_SCRIPT = r"""
echo @@uname
uname -srm 2>/dev/null
echo @@cpuinfo
cat /proc/cpuinfo 2>/dev/null
echo @@nproc
nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null
echo @@meminfo
grep -E '^(MemTotal|MemAvailable):' /proc/meminfo 2>/dev/null
echo @@getprop
if command -v getprop >/dev/null 2>&1; then
  for p in %(props)s; do echo "$p=$(getprop $p)"; done
fi
echo @@os_release
cat /etc/os-release 2>/dev/null
echo @@dt_model
cat /proc/device-tree/model 2>/dev/null | tr -d '\000'; echo
echo @@l4t
head -n 1 /etc/nv_tegra_release 2>/dev/null
echo @@jetpack
dpkg-query -W -f '${Version}\n' nvidia-jetpack 2>/dev/null
echo @@tools
for t in timeout taskset %(python)s; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done
echo @@python
%(python)s -c 'import platform; print(platform.python_version())' 2>/dev/null
""" + _STATE_SCRIPT

# ARM "CPU part" ids (implementer 0x41) of the cores found in phones and boards
_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2", "0xd4d": "Cortex-A715",
    "0xd4e": "Cortex-X3", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
}


@dataclass
class DeviceInfo:
    """What a device is, as probed."""

    arch: str = ""
    soc: str = ""
    cpu: str = ""
    cores: int = 0
    max_freqs_mhz: List[int] = field(default_factory=list)
    memory_mb: int = 0
    os: str = ""
    kernel: str = ""
    android_sdk: Optional[int] = None
    jetpack: str = ""
    python: str = ""
    tools: List[str] = field(default_factory=list)
    engines: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        freqs = "/".join(f"{f / 1000:.2f}" for f in self.max_freqs_mhz)
        return (f"{self.soc or self.cpu or self.arch}, {self.cores} cores"
                + (f" @ {freqs} GHz" if freqs else "")
                + (f", {self.memory_mb / 1024:.1f} GB" if self.memory_mb else ""))


def split_sections(text: str) -> Dict[str, str]:
    """``@@name`` marker lines -> {name: text below it}."""
    out: Dict[str, List[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@") and " " not in line.strip():
            current = line.strip()[2:]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v).strip("\n") for k, v in out.items()}


def probe_info(transport: Transport, python: str = "python3", timeout: float = 60.0) -> DeviceInfo:
    """Probe what the device is (one shell call)."""
    script = _INFO_SCRIPT % {"props": " ".join(_PROPS), "python": shlex.quote(python)}
    res = transport.shell(script, timeout=timeout).check("device probe")
    return parse_info(res.stdout)


STATE_SCRIPT = _STATE_SCRIPT


def read_state(transport: Transport, timeout: float = 30.0) -> Dict[str, object]:
    """CPU frequencies and thermal zones now (one shell call)."""
    res = transport.shell(_STATE_SCRIPT, timeout=timeout).check("device state probe")
    return parse_state(res.stdout)


def parse_info(text: str) -> DeviceInfo:
    s = split_sections(text)
    props = dict(line.split("=", 1) for line in s.get("getprop", "").splitlines() if "=" in line)
    props = {k: v.strip() for k, v in props.items() if v.strip()}
    cpuinfo = s.get("cpuinfo", "")
    uname = s.get("uname", "").split()
    info = DeviceInfo()
    info.kernel = uname[1] if len(uname) > 1 else ""
    info.arch = props.get("ro.product.cpu.abi") or (uname[-1] if uname else "")
    info.cpu = _cpu_name(cpuinfo)
    info.soc = _soc_name(props, cpuinfo, s.get("dt_model", ""))
    procs = len(re.findall(r"^processor\s*:", cpuinfo, re.M))
    nproc = s.get("nproc", "").strip()
    info.cores = procs or (int(nproc) if nproc.isdigit() else 0)
    state = parse_state(text)
    maxes = sorted({c["max_khz"] for c in state["cpus"].values() if c.get("max_khz")})
    info.max_freqs_mhz = [int(round(k / 1000)) for k in maxes]
    mem = re.search(r"MemTotal:\s+(\d+)\s*kB", s.get("meminfo", ""))
    info.memory_mb = int(mem.group(1)) // 1024 if mem else 0
    info.android_sdk = int(props["ro.build.version.sdk"]) \
        if props.get("ro.build.version.sdk", "").isdigit() else None
    info.os = _os_name(props, s.get("os_release", ""))
    info.jetpack = _jetpack(s.get("l4t", ""), s.get("jetpack", ""))
    info.python = s.get("python", "").strip()
    info.tools = s.get("tools", "").split()
    return info


def _cpu_name(cpuinfo: str) -> str:
    for key in ("model name", "Model", "Hardware"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.M)
        if m:
            return m.group(1).strip()
    parts = re.findall(r"^CPU part\s*:\s*(0x[0-9a-fA-F]+)", cpuinfo, re.M)
    if not parts:
        return ""
    counts: Dict[str, int] = {}
    for p in parts:
        name = _ARM_PARTS.get(p.lower(), f"ARM part {p}")
        counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


def _soc_name(props: Dict[str, str], cpuinfo: str, dt_model: str) -> str:
    if props.get("ro.soc.model"):
        return " ".join(filter(None, [props.get("ro.soc.manufacturer"), props["ro.soc.model"]]))
    if props.get("ro.board.platform"):
        return props["ro.board.platform"]
    if dt_model.strip():
        return dt_model.strip()
    m = re.search(r"^Hardware\s*:\s*(.+)$", cpuinfo, re.M)
    return m.group(1).strip() if m else ""


def _os_name(props: Dict[str, str], os_release: str) -> str:
    if props.get("ro.build.version.release"):
        sdk = props.get("ro.build.version.sdk")
        return f"Android {props['ro.build.version.release']}" + (f" (SDK {sdk})" if sdk else "")
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', os_release, re.M)
    return m.group(1) if m else ""


def _jetpack(l4t: str, jetpack: str) -> str:
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", l4t)
    parts = []
    if jetpack.strip():
        parts.append(f"JetPack {jetpack.strip().split('+')[0].split('-')[0]}")
    if m:
        parts.append(f"L4T R{m.group(1)}.{m.group(2)}")
    return ", ".join(parts)


def parse_state(text: str) -> Dict[str, object]:
    """{"cpus": {cpuN: {cur_khz, cap_khz, max_khz}}, "thermal": {zone: {type, temp_c}},
    "uptime_s": the device's monotonic clock (seconds since boot, 10 ms steps; it orders
    jobs on one device whatever the host clocks say)}."""
    s = split_sections(text)
    uptime = s.get("uptime", "").split()
    up: Optional[float] = None
    if uptime and re.match(r"^\d+(\.\d+)?$", uptime[0]):
        up = float(uptime[0])
    cpus: Dict[str, Dict[str, Optional[int]]] = {}
    for line in s.get("cpufreq", "").splitlines():
        f = line.split()
        if len(f) == 4:
            cur, cap, mx = (int(v) if v.isdigit() else None for v in f[1:])
            cpus[f[0]] = {"cur_khz": cur, "cap_khz": cap, "max_khz": mx}
    thermal: Dict[str, Dict[str, object]] = {}
    for line in s.get("thermal", "").splitlines():
        f = line.split(None, 2)
        if len(f) >= 2 and re.match(r"^-?\d+$", f[1]):
            raw = int(f[1])
            temp = raw / 1000.0 if abs(raw) >= 1000 else float(raw)
            kind = f[2].strip().replace(" ", "_") if len(f) > 2 else ""
            thermal[f[0]] = {"type": kind, "temp_c": temp}
    return {"cpus": cpus, "thermal": thermal, "uptime_s": up}


#: a thermal zone at or above this after a run gets a warning (CPU zones throttle ~85-95 C)
HOT_C = 80.0


def throttle_reasons(before: Optional[Dict], after: Optional[Dict]) -> List[str]:
    """Why the numbers of a run may be off because the device throttled (empty: none seen).

    Signs: a CPU's frequency cap (``scaling_max_freq``) fell during the run, or sits
    below the CPU's maximum after it; a thermal zone ended at or above ``HOT_C``.
    """
    reasons: List[str] = []
    if not after:
        return reasons
    b_cpus = (before or {}).get("cpus", {})
    for cpu, a in sorted(after.get("cpus", {}).items()):
        cap, mx = a.get("cap_khz"), a.get("max_khz")
        prev = b_cpus.get(cpu, {}).get("cap_khz")
        if cap and prev and cap < prev:
            reasons.append(f"{cpu} frequency cap fell from {prev // 1000} to {cap // 1000} MHz")
        elif cap and mx and cap < mx * 0.95:
            reasons.append(f"{cpu} capped at {cap // 1000} of {mx // 1000} MHz")
    for zone, z in sorted(after.get("thermal", {}).items()):
        if z["temp_c"] >= HOT_C:
            reasons.append(f"{zone} ({z['type']}) at {z['temp_c']:.0f} C")
    return reasons
