"""A known_hosts file read the way OpenSSH reads it, for paramiko.

Why not ``SSHClient.load_host_keys``: paramiko raises on a valid line with a
marker (``@cert-authority``, ``@revoked``), which ended a device's setup with a
traceback, and it knows nothing of revocation. And its ``AutoAddPolicy``
rewrites the whole file from what it understood, dropping every line it
skipped. Here:

* plain lines (hashed or not) become paramiko's host keys; a line paramiko
  cannot parse (an unknown key type, bad base64) is skipped, as OpenSSH skips it;
* ``@revoked`` keys are refused for every host, even when a plain line lists
  them too (OpenSSH scopes them by host pattern; refusing everywhere is stricter);
* ``@cert-authority`` lines are skipped: paramiko cannot check host
  certificates, so a board known only through its CA is refused as unknown;
* a new key accepted under ``trust_new_host_key`` is appended as one line; the
  file is never rewritten.
"""
from __future__ import annotations

import base64
import os
import threading
from typing import List, Set, Tuple

from device_farm.transports.base import HostKeyError, TransportError

_APPEND_LOCK = threading.Lock()


class KnownHosts:
    """The parsed file: plain entries for paramiko, revoked keys, skipped lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: List[Tuple[List[str], object]] = []   # (host names, paramiko PKey)
        self.revoked: Set[bytes] = set()
        self.cert_authorities = 0
        self.skipped: List[int] = []

    @classmethod
    def read(cls, path: str) -> "KnownHosts":
        from paramiko.hostkeys import HostKeyEntry

        known = cls(path)
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError as exc:
            raise TransportError(f"known_hosts {path}: cannot read it: "
                                 f"{exc.strerror or exc}") from None
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                known._marker(line, number)
                continue
            try:
                entry = HostKeyEntry.from_line(line, number)
            except Exception:  # noqa: BLE001 - paramiko raises several kinds on a bad line
                entry = None
            if entry is None:
                known.skipped.append(number)
                continue
            known.entries.append((list(entry.hostnames), entry.key))
        return known

    def _marker(self, line: str, number: int) -> None:
        fields = line.split()
        if len(fields) < 4:
            self.skipped.append(number)
            return
        if fields[0] == "@revoked":
            try:
                self.revoked.add(base64.b64decode(fields[3], validate=True))
            except ValueError:
                self.skipped.append(number)
        elif fields[0] == "@cert-authority":
            self.cert_authorities += 1
        else:
            self.skipped.append(number)

    def is_revoked(self, key) -> bool:
        return key.asbytes() in self.revoked

    def install(self, client) -> None:
        """Put the usable, unrevoked entries into a paramiko client's host keys (the
        client is not told the file name, so it never writes it)."""
        keys = client.get_host_keys()
        for names, key in self.entries:
            if self.is_revoked(key):
                continue
            for name in names:
                keys.add(name, key.get_name(), key)

    def append(self, hostname: str, key) -> None:
        """Record a newly trusted key as one line at the end of the file."""
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _APPEND_LOCK:
            needs_newline = False
            if os.path.exists(self.path) and os.path.getsize(self.path):
                with open(self.path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    needs_newline = f.read(1) != b"\n"
            with open(self.path, "a") as f:
                f.write(("\n" if needs_newline else "") + line)


def policy(known: KnownHosts, trust_new: bool, who: str, keyscan: str):
    """paramiko's missing-host-key policy: refuse revoked keys always, unknown keys
    unless ``trust_new`` (then record them)."""
    import paramiko

    class _Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key) -> None:
            if known.is_revoked(key):
                raise HostKeyError(
                    f"{who}: the board's host key ({key.get_name()} "
                    f"{key.get_fingerprint().hex()}) is marked @revoked in {known.path}; "
                    "refusing to connect")
            if not trust_new:
                hint = (" (it has @cert-authority lines, but host certificates are not "
                        "supported: list the board's own key)") if known.cert_authorities else ""
                raise HostKeyError(
                    f"{who}: host key not in {known.path}{hint}; refusing to connect. Add it "
                    f"({keyscan} >> {known.path}) or set trust_new_host_key = true")
            known.append(hostname, key)
            client.get_host_keys().add(hostname, key.get_name(), key)

    return _Policy()
