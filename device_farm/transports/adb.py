"""Android phones through an adb server (local, or remote as ``host:port``).

adbutils speaks the adb server's protocol; three things are done here on top,
each for a reason:

* adbutils starts ``adb start-server`` (on the default port) whenever it cannot
  reach a server. A farm pointed at a remote server must not start a local one,
  so connections here never auto-start a server.
* ``shell`` reads shell-v2 packets (stdout, stderr, exit code) against a
  deadline; adbutils' own reader has only a per-read socket timeout, which a
  command that trickles output would never hit. Devices without ``shell_v2``
  (Android < 7) get a v1 shell with the exit code echoed after the output.
* file transfers open their sync connection with a timeout (adbutils opens it
  with none, so a hung phone would block the farm forever).
"""
from __future__ import annotations

import socket
import time
from typing import List, Optional, Tuple

from device_farm.transports.base import (
    CommandTimeout, ShellResult, TransientTransportError, Transport, TransportError)

_V1_EXIT_MARK = "@@edgert-exit:"
_OPEN_TIMEOUT_S = 15.0


def parse_server(text: Optional[str]) -> Tuple[str, int]:
    """``"host:port"`` (or ``"port"``, or empty for 127.0.0.1:5037) -> (host, port)."""
    if not text:
        return "127.0.0.1", 5037
    host, _, port = str(text).rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise TransportError(f"adb_server {text!r} is not host:port") from None


def _client(host: str, port: int, timeout: float = _OPEN_TIMEOUT_S):
    """An adbutils client that never starts an adb server by itself."""
    import adbutils
    from adbutils._adb import AdbConnection

    class _Connection(AdbConnection):
        def _safe_connect(self):  # adbutils would run `adb start-server` here
            return self._create_socket()

    class _Client(adbutils.AdbClient):
        def make_connection(self, timeout: Optional[float] = None):
            conn = _Connection(self.host, self.port)
            conn.conn.settimeout(timeout or _default_timeout)
            return conn

    _default_timeout = timeout
    return _Client(host=host, port=port)


def list_devices(server: Optional[str] = None) -> List[Tuple[str, str]]:
    """(serial, state) of every device an adb server knows; [] when none is running."""
    import adbutils

    host, port = parse_server(server)
    try:
        return [(d.serial, d.state) for d in _client(host, port, 5.0).list()]
    except (adbutils.AdbError, OSError):
        return []


class ADBTransport(Transport):
    kind = "adb"

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self._host, self._port = parse_server(spec.adb_server)
        self._client = _client(self._host, self._port)
        self._device = None
        self._v2: Optional[bool] = None

    def describe(self) -> str:
        return f"adb:{self.spec.name} ({self.spec.serial} via {self._host}:{self._port})"

    # -- connection -------------------------------------------------------------------------
    def _dev(self):
        import adbutils

        if self._device is not None:
            return self._device
        try:
            if self.spec.adb_connect:
                self._client.connect(self.spec.serial, timeout=10)
            dev = self._client.device(serial=self.spec.serial)
            state = dev.get_state()
            if state != "device":
                raise TransientTransportError(f"{self.describe()}: device is {state}")
            self._v2 = "shell_v2" in dev.get_features().split(",")
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise TransientTransportError(f"{self.describe()}: not reachable: {exc}") from None
        self._device = dev
        return dev

    def reset(self) -> None:
        self._device = None

    def _lost(self, what: str, exc: BaseException) -> TransientTransportError:
        self._device = None
        return TransientTransportError(f"{self.describe()}: {what}: "
                                       f"{str(exc) or type(exc).__name__}")

    # -- commands -----------------------------------------------------------------------------
    def _exec(self, command: str, deadline_s: float) -> ShellResult:
        import adbutils

        dev = self._dev()
        end = time.monotonic() + deadline_s
        service = ("shell,v2,raw:" if self._v2 else "shell:") + (
            command if self._v2 else f"{command}; echo {_V1_EXIT_MARK}$?")
        try:
            conn = dev.open_transport(timeout=min(deadline_s, _OPEN_TIMEOUT_S))
            conn.send_command(service)
            conn.check_okay()
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise self._lost("cannot start a command", exc) from None
        try:
            reader = _Reader(conn.conn, end, self.describe())
            return reader.shell_v2() if self._v2 else reader.shell_v1()
        except (ConnectionError, EOFError) as exc:
            raise self._lost("the connection dropped while a command ran", exc) from None
        finally:
            conn.close()

    # -- files ---------------------------------------------------------------------------------
    def _sync(self, timeout: float):
        from contextlib import contextmanager
        import struct

        from adbutils.sync import Sync

        class _TimedSync(Sync):
            @contextmanager
            def _prepare_sync(self, path: str, cmd: str):  # adbutils passes no timeout
                with self._device.open_transport(timeout=timeout) as c:
                    c.send_command("sync:")
                    c.check_okay()
                    raw = path.encode("utf-8")
                    c.conn.sendall(cmd.encode("utf-8") + struct.pack("<I", len(raw)) + raw)
                    yield c

        return _TimedSync(self._dev())

    def _push(self, local: str, remote: str, timeout: float) -> None:
        self._file_op("push", local, remote, timeout,
                      lambda s: s.push(local, remote, mode=0o644, check=False))

    def pull(self, remote: str, local: str, timeout: float = 300.0) -> None:
        self._file_op("pull", remote, local, timeout, lambda s: s.pull_file(remote, local))

    def _file_op(self, what: str, src: str, dst: str, timeout: float, op) -> None:
        import adbutils

        try:
            op(self._sync(timeout))
        except adbutils.AdbTimeout:
            self._device = None
            raise CommandTimeout(f"{self.describe()}: {what} {src} -> {dst} stalled for "
                                 f"{timeout:g} s") from None
        except (adbutils.AdbError, OSError, EOFError) as exc:
            if what == "pull" and self._still_there():  # e.g. no such file on the device
                raise TransportError(f"{self.describe()}: {what} {src} -> {dst} failed: "
                                     f"{str(exc) or type(exc).__name__}") from None
            # an interrupted push is retried from scratch (the cache never uses a .part)
            raise self._lost(f"{what} {src} -> {dst} failed", exc) from None

    def _still_there(self) -> bool:
        import adbutils

        try:
            return self._client.device(serial=self.spec.serial).get_state() == "device"
        except (adbutils.AdbError, OSError, EOFError):
            return False


class _Reader:
    """Reads one shell stream from the adb server socket against a deadline."""

    def __init__(self, sock: socket.socket, end: float, who: str) -> None:
        self.sock, self.end, self.who = sock, end, who
        self.buf = bytearray()

    def _fill(self) -> bool:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise CommandTimeout(f"{self.who}: no answer before the deadline (the link may "
                                 "hang); gave up on the command")
        self.sock.settimeout(min(remaining, 5.0))
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return True
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("stream closed before the command's exit code arrived")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def shell_v2(self) -> ShellResult:
        out, err = bytearray(), bytearray()
        while True:
            header = self._take(5)
            kind, length = header[0], int.from_bytes(header[1:5], "little")
            data = self._take(length) if length else b""
            if kind == 1:
                out += data
            elif kind == 2:
                err += data
            elif kind == 3:
                return ShellResult(data[0] if data else 255, out.decode(errors="replace"),
                                   err.decode(errors="replace"))

    def shell_v1(self) -> ShellResult:
        while self._fill():
            pass
        text = self.buf.decode(errors="replace")
        head, mark, tail = text.rpartition(_V1_EXIT_MARK)
        if not mark:
            raise EOFError("stream closed before the command's exit code arrived")
        return ShellResult(int(tail.strip() or 255), head, "")
