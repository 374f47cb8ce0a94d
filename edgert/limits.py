"""Budgets of memory and time: how much a model file, a feed or a child process may
take before edgert refuses, instead of letting a hostile or unlucky file exhaust the
machine.

One figure, the memory limit, is derived from the machine: half its physical memory,
or what is available now if that is less, at least 1 GiB. ``EDGERT_MAX_MEMORY``
(bytes, or with a K/M/G/T suffix) sets it. From it follow:

- the address-space budget of the child processes (the isolated first load, runs
  with a deadline): an allocation past it fails inside the child, which becomes an
  error of the caller instead of the caller's out-of-memory kill;
- the largest tensor a model file may declare, and the largest feed (random inputs
  included) a session accepts: a quarter of the limit, since an engine holds an
  input, an output and intermediates at once.

The isolated load's deadline grows with the model's size (``probe_timeout``);
``EDGERT_PROBE_TIMEOUT`` (seconds) replaces it.
"""
from __future__ import annotations

import functools
import os
import re
from typing import Optional, Tuple

from edgert.errors import UnsupportedOptionError

MEMORY_ENV = "EDGERT_MAX_MEMORY"
TIMEOUT_ENV = "EDGERT_PROBE_TIMEOUT"
_MIN_LIMIT = 1 << 30
# The isolated load: a fixed part (a Python process starts, imports numpy and the engine,
# loads and runs once) and a part per byte of model (reading, weight packing, one run).
PROBE_BASE_S = 20.0
PROBE_S_PER_MB = 0.1

_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int:
    """``"2G"``, ``"512m"``, ``"1073741824"`` -> bytes; ``ValueError`` when unreadable."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)i?[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"not a size in bytes: {text!r} (e.g. 4G, 512M, 1073741824)")
    return int(float(m.group(1)) * _SUFFIX[m.group(2).lower()])


@functools.lru_cache(maxsize=None)
def machine_memory() -> Tuple[Optional[int], Optional[int]]:
    """(total, available) physical memory in bytes, ``None`` where the OS does not say.

    Read once per process: feeds are checked against the budget on every run."""
    total = avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    value = int(rest.split()[0]) * 1024
                    total, avail = (value, avail) if key == "MemTotal" else (total, value)
    except (OSError, ValueError, IndexError):
        pass
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = None
    return total, avail


def memory_limit() -> int:
    """The memory budget in bytes (``EDGERT_MAX_MEMORY``, else derived from the machine)."""
    return _memory_limit(os.environ.get(MEMORY_ENV))


@functools.lru_cache(maxsize=8)
def _memory_limit(env: Optional[str]) -> int:
    if env:
        try:
            return parse_bytes(env)
        except ValueError as exc:
            raise UnsupportedOptionError(f"{MEMORY_ENV}: {exc}") from None
    total, avail = machine_memory()
    if total is None:
        return 4 * _MIN_LIMIT
    limit = total // 2 if avail is None else min(total // 2, avail)
    return max(_MIN_LIMIT, limit)


def tensor_budget() -> int:
    """The largest single tensor or feed set accepted: a quarter of the memory limit."""
    return memory_limit() // 4


def probe_timeout(model_bytes: int) -> float:
    """Seconds the isolated first load may take for a model of ``model_bytes``."""
    env = os.environ.get(TIMEOUT_ENV)
    if env:
        return float(env)
    return PROBE_BASE_S + PROBE_S_PER_MB * model_bytes / 1e6


def limit_this_process(limit: int) -> Optional[str]:
    """Cap this process's memory at ``limit`` bytes (for a child: an allocation past it
    fails as MemoryError or the engine's allocation error, not as the machine's OOM).

    RLIMIT_DATA on Linux counts the writable private memory a process maps (what
    malloc and numpy take), not the address space reserved for thread stacks and
    allocator arenas, so it fits engines that reserve much and use little; RLIMIT_AS
    where there is no RLIMIT_DATA. Returns a reason when no limit could be set.
    """
    try:
        import resource
    except ImportError:  # Windows
        return "resource limits are not available on this platform"
    kind = getattr(resource, "RLIMIT_DATA", None) or getattr(resource, "RLIMIT_AS", None)
    if kind is None:
        return "no RLIMIT_DATA or RLIMIT_AS here"
    try:
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(kind, (limit, hard))
    except (OSError, ValueError) as exc:
        return f"setrlimit failed: {exc}"
    return None


def fmt_bytes(n: int) -> str:
    """``6442450944`` -> ``'6.0 GiB'``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
