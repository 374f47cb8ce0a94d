"""Getting files onto a device once: a content-addressed cache in its workdir.

A file lands at ``<workdir>/cache/<sha256>/<name>``; the hash names the content,
the name stays the user's (the benchmark reports it). A file is pushed to a
``.part`` name, its size checked on the device, then renamed, so an interrupted
push can never pass for a cached file. The ``.part`` name is unique to the cache
object (process id and a random token): two farm processes pushing the same
file to one device at once each write their own and the last rename wins with
identical bytes (one shared name let one push truncate the other's).
Known-present paths are remembered per transport, so a warm cache costs nothing,
and a file already on the device from an earlier run costs one ``test -f``.

Boards need not have edgert installed: ``edgert_zip()`` packs the running
edgert package (pure Python) into a zip with fixed timestamps, so its hash only
changes when the code does, and the runner imports it via PYTHONPATH.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import secrets
import shlex
import threading
import zipfile
from typing import Dict, Optional, Sequence, Set, Tuple

from edgert.files import file_sha256

from device_farm.transports.base import (
    RemoteCommandError, TransientTransportError, Transport, TransportError)

_ZIP_LOCK = threading.Lock()
_ZIP_CACHE: Dict[str, str] = {}


class DeployCache:
    """The content-addressed file cache of one device."""

    def __init__(self, transport: Transport, workdir: str) -> None:
        self.transport = transport
        self.root = posixpath.join(workdir, "cache")
        self._present: Set[str] = set()
        self._hashes: Dict[str, str] = {}
        self.hits = 0
        self.pushes = 0
        self._upload_tag = f"{os.getpid()}-{secrets.token_hex(4)}"

    def sha256(self, local: str) -> str:
        """sha256 of a local file, remembered by (path, size, mtime)."""
        st = os.stat(local)
        key = f"{os.path.abspath(local)}|{st.st_size}|{st.st_mtime_ns}"
        if key not in self._hashes:
            self._hashes[key] = file_sha256(local)
        return self._hashes[key]

    def remote_path(self, sha: str, name: str) -> str:
        if "/" in name or name in ("", ".", ".."):
            raise TransportError(f"cache file name {name!r} must be a plain file name")
        return posixpath.join(self.root, sha, name)

    def prefetch(self, files: Sequence[Tuple[str, str]]) -> int:
        """Learn in one shell call which of ``(sha256, name)`` are on the device already
        (a run checks all its models at once instead of one round trip per job)."""
        paths = [self.remote_path(sha, name) for sha, name in files]
        paths = [p for p in dict.fromkeys(paths) if p not in self._present]
        if not paths:
            return 0
        res = self.transport.shell(
            "for f in " + " ".join(shlex.quote(p) for p in paths)
            + '; do [ -f "$f" ] && printf "%s\\0" "$f"; done; true', timeout=60)
        found = set(res.stdout.split("\0")) & set(paths)
        self._present.update(found)
        return len(found)

    def ensure(self, local: str, name: Optional[str] = None, sha: Optional[str] = None,
               mode: str = "644", timeout: float = 600.0) -> str:
        """Make sure ``local`` is on the device; return its path there."""
        sha = sha or self.sha256(local)
        name = name or os.path.basename(local)
        final = self.remote_path(sha, name)
        if final in self._present:
            self.hits += 1
            return final
        folder = posixpath.dirname(final)
        q_final, q_folder = shlex.quote(final), shlex.quote(folder)
        res = self.transport.shell(
            f"if [ -f {q_final} ]; then echo present; else mkdir -p {q_folder} && echo absent; fi",
            timeout=60).check(f"cache lookup of {name}")
        if res.stdout.strip() == "present":
            self.hits += 1
            self._present.add(final)
            return final
        part = posixpath.join(folder, f".part-{sha[:16]}-{self._upload_tag}")
        size = os.path.getsize(local)
        self.transport.push(local, part, timeout=timeout)
        q_part = shlex.quote(part)
        res = self.transport.shell(
            f'n=$(wc -c < {q_part}) && [ "$n" -eq {size} ] && chmod {mode} {q_part} && '
            f'mv -f {q_part} {q_final} || {{ echo "size on device: $n, expected {size}" >&2; '
            f'rm -f {q_part}; exit 1; }}', timeout=60)
        try:
            res.check(f"push of {local} (incomplete on the device)")
        except RemoteCommandError as exc:   # a push cut short: pushing again may work
            raise TransientTransportError(str(exc)) from None
        self.pushes += 1
        self._present.add(final)
        return final


def edgert_zip(out_dir: Optional[str] = None) -> str:
    """A zip of the running edgert package (what boards import), built once per process."""
    import edgert

    pkg = os.path.dirname(os.path.abspath(edgert.__file__))
    with _ZIP_LOCK:
        if pkg in _ZIP_CACHE and os.path.exists(_ZIP_CACHE[pkg]):
            return _ZIP_CACHE[pkg]
        files = []
        for root, dirs, names in os.walk(pkg):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for n in sorted(names):
                if n.endswith((".py", ".json", ".toml")):
                    full = os.path.join(root, n)
                    files.append((os.path.relpath(full, os.path.dirname(pkg)), full))
        digest = hashlib.sha256()
        for arc, full in files:
            digest.update(arc.encode() + b"\0")
            with open(full, "rb") as f:
                digest.update(f.read())
        out_dir = out_dir or os.path.join(_cache_base(), "zips")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"edgert-{edgert.__version__}-{digest.hexdigest()[:16]}.zip")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for arc, full in files:
                    info = zipfile.ZipInfo(arc.replace(os.sep, "/"),
                                           date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    with open(full, "rb") as f:
                        z.writestr(info, f.read())
            os.replace(tmp, path)
        _ZIP_CACHE[pkg] = path
        return path


def _cache_base() -> str:
    return os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgert", "farm")
