"""One interface over every way of reaching a device: push, pull, shell.

Why a timeout must hold on both sides: a client-side timeout alone leaves the
benchmark running on the board (and heating it) after we gave up, and a
device-side ``timeout`` alone does not help when the link itself hangs. So
``shell`` wraps every command in the device's own ``timeout`` (which kills the
whole process group), and each transport reads the answer with a deadline a
little past it.

Why the guard around it: when the client dies (``kill -9`` of ``farm bench``),
nothing tells the device: sshd does not signal a command without a terminal,
and adbd only sends SIGHUP to the shell's own process. The benchmark would go
on until its timeout and spoil the numbers of whoever uses the device next. So
every command runs under ``GUARD``, a few lines of POSIX sh: the command runs in
the background under ``timeout`` (which leads its own process group), and a
watcher reads the command's stdin, which every transport keeps open for as long
as the client waits (the SSH channel, the ADB stream, a pipe for the local
device). When the client goes away the stdin hits end-of-file and the watcher
stops the whole group. Commands themselves read nothing from stdin
(``</dev/null``).

Errors are sorted by what the scheduler should do about them:
``TransientTransportError`` (the link dropped: reconnect and retry),
``CommandTimeout`` (the command ran too long: do not retry),
``HostKeyError`` (refuse, never retry), ``TransportError`` (anything else).
"""
from __future__ import annotations

import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Dict, Iterable, Mapping, Optional

from device_farm.errors import DeviceError

#: seconds between the device's SIGTERM and SIGKILL (``timeout -k``)
KILL_GRACE_S = 2.0
#: extra seconds the client waits past the device-side timeout before giving up
CLIENT_SLACK_S = 3.0
#: exit codes of ``timeout`` when it had to stop the command (TERM, then KILL)
TIMEOUT_EXIT_CODES = (124, 137)
#: ``sh -c GUARD edgert-guard GRACE TIMEOUT COMMAND`` (see the module docstring)
GUARD = ('exec 3<&0; '
         'timeout -k "$1" "$2" sh -c "$3" </dev/null 3<&- & j=$!; '
         '{ while read -r _ <&3; do :; done; '
         'kill -TERM -$j 2>/dev/null || kill -TERM $j 2>/dev/null; } & w=$!; '
         'exec 3<&-; wait $j; rc=$?; kill $w 2>/dev/null; exit $rc')


class TransportError(DeviceError):
    """The transport failed in a way a retry will not fix."""


class TransientTransportError(TransportError):
    """The link to the device dropped or refused; reconnecting may help."""


class CommandTimeout(TransportError):
    """A command ran past its timeout (stopped on the device, or the link hung)."""


class HostKeyError(TransportError):
    """The SSH host key is unknown or changed: the connection was refused."""


class RemoteCommandError(DeviceError):
    """A command ran on the device and failed (non-zero exit)."""

    def __init__(self, what: str, result: "ShellResult") -> None:
        self.result = result
        tail = (result.stderr.strip() or result.stdout.strip())[-800:]
        super().__init__(f"{what} failed with exit code {result.exit_code}"
                         + (f": {tail}" if tail else ""))


@dataclass
class ShellResult:
    """What a command on a device did."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self, what: str) -> "ShellResult":
        if self.exit_code != 0:
            raise RemoteCommandError(what, self)
        return self


def quote_argv(argv: Iterable[object]) -> str:
    """A shell command line from arguments, every one quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def guarded(command: str, timeout: float) -> str:
    """The command line a transport runs for ``command`` (timeout + client watcher)."""
    return quote_argv(["sh", "-c", GUARD, "edgert-guard", f"{KILL_GRACE_S:g}", f"{timeout:g}",
                       command])


def env_prefix(env: Mapping[str, str]) -> str:
    """``env K=V ...`` with every assignment quoted ('' when empty)."""
    if not env:
        return ""
    for key in env:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise TransportError(f"environment variable name {key!r} is not valid")
    return "env " + quote_argv(f"{k}={v}" for k, v in env.items()) + " "


class Transport(ABC):
    """How to reach one device. Subclasses provide ``_exec``, ``push``, ``pull``."""

    #: the ``transport = ...`` value in devices.toml
    kind: ClassVar[str] = ""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.push_count = 0
        self.bytes_pushed = 0
        self.shell_count = 0

    # -- what subclasses provide ------------------------------------------------------
    @abstractmethod
    def _exec(self, command: str, deadline_s: float) -> ShellResult:
        """Run ``command`` in the device's shell; give up after ``deadline_s`` seconds
        (raise ``CommandTimeout`` and drop the channel). The command's stdin stays open
        while the client waits (the guard's watcher reads it: end-of-file means the
        client is gone)."""

    @abstractmethod
    def _push(self, local: str, remote: str, timeout: float) -> None:
        """Copy a local file to ``remote`` (the parent folder exists)."""

    @abstractmethod
    def pull(self, remote: str, local: str, timeout: float = 300.0) -> None:
        """Copy a device file to ``local``."""

    def close(self) -> None:
        """Release the link (pooled links may stay open for other users)."""

    def reset(self) -> None:
        """Forget a link that failed, so the next call reconnects."""

    def describe(self) -> str:
        return f"{self.kind}:{self.spec.name}"

    # -- shared behaviour ---------------------------------------------------------------
    def push(self, local: str, remote: str, timeout: float = 600.0) -> None:
        import os

        size = os.path.getsize(local)
        self._push(local, remote, timeout)
        self.push_count += 1
        self.bytes_pushed += size

    def shell(self, command: str, timeout: float = 60.0) -> ShellResult:
        """Run a shell command line on the device, bounded on both sides.

        The command runs as ``timeout -k GRACE T sh -c COMMAND`` on the device; the
        client waits ``T + GRACE + slack``. Raises ``CommandTimeout`` when either
        side had to stop it. Build ``command`` with ``quote_argv`` for arguments.
        """
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        wrapped = guarded(command, timeout)
        t0 = time.monotonic()
        self.shell_count += 1
        res = self._exec(wrapped, timeout + KILL_GRACE_S + CLIENT_SLACK_S)
        res.duration_s = time.monotonic() - t0
        if res.exit_code in TIMEOUT_EXIT_CODES and res.duration_s >= timeout * 0.95:
            raise CommandTimeout(
                f"{self.describe()}: command ran past its {timeout:g} s timeout and was "
                f"stopped on the device: {_short(command)}")
        return res

    def run(self, argv: Iterable[object], timeout: float = 60.0,
            env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None) -> ShellResult:
        """Run one program with arguments (all quoted), optional env and folder."""
        line = env_prefix(env or {}) + quote_argv(argv)
        if cwd:
            line = f"cd {shlex.quote(cwd)} && {line}"
        return self.shell(line, timeout)

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(command: str, limit: int = 200) -> str:
    return command if len(command) <= limit else command[:limit] + "..."
