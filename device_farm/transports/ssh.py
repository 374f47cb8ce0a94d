"""SSH boards (Jetson, Raspberry Pi, any Linux box) through paramiko.

Why the read loop is hand-written: paramiko's ``recv_exit_status()`` blocks
forever when the link hangs, so output is read with ``select`` against a
deadline and the exit status is taken only once paramiko says it is there.

Host keys are checked against a known_hosts file (read by ``known_hosts.py``,
which understands OpenSSH's ``@revoked`` and ``@cert-authority`` lines); a board
whose key is unknown, changed or revoked is refused. ``trust_new_host_key =
true`` in devices.toml accepts and records an unknown key (never a changed or a
revoked one).

One connection per (host, port, user, key, known_hosts), shared by every transport object in the
process and kept alive with SSH keepalives; a dropped connection is replaced on
the next call.
"""
from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Dict, Tuple

from device_farm.transports.base import (
    CommandTimeout, HostKeyError, ShellResult, TransientTransportError, Transport,
    TransportError)
from device_farm.transports.known_hosts import KnownHosts, policy

# host, port, user, key file, known_hosts, trust: devices reach one board through one
# connection only when they would authenticate and check its key the same way
_PoolKey = Tuple[str, int, str, str, str, bool, str]
_POOL: Dict[_PoolKey, object] = {}
_POOL_LOCKS: Dict[_PoolKey, threading.Lock] = {}
_POOL_GUARD = threading.Lock()


def close_pool() -> None:
    """Close every pooled SSH connection (end of a run, test teardown)."""
    with _POOL_GUARD:
        clients = list(_POOL.values())
        _POOL.clear()
    for c in clients:
        c.close()


class SSHTransport(Transport):
    kind = "ssh"

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self._key: _PoolKey = (spec.host, int(spec.port), spec.user or "", spec.key_file or "",
                               spec.known_hosts or "", bool(spec.trust_new_host_key),
                               spec.proxy_command or "")
        self._sftp = None

    def describe(self) -> str:
        return f"ssh:{self.spec.name} ({self.spec.user + '@' if self.spec.user else ''}" \
               f"{self.spec.host}:{self.spec.port})"

    # -- connection ----------------------------------------------------------------------
    def _client(self):
        with _POOL_GUARD:
            lock = _POOL_LOCKS.setdefault(self._key, threading.Lock())
        with lock:
            client = _POOL.get(self._key)
            if client is not None:
                t = client.get_transport()
                if t is not None and t.is_active():
                    return client
                client.close()
            client = self._connect()
            with _POOL_GUARD:
                _POOL[self._key] = client
            return client

    def reset(self) -> None:
        self.drop_connection()

    def drop_connection(self) -> None:
        """Forget the pooled connection (after the link failed)."""
        self._sftp = None
        with _POOL_GUARD:
            client = _POOL.pop(self._key, None)
        if client is not None:
            client.close()

    def _connect(self):
        import logging

        import paramiko

        # paramiko logs link failures with tracebacks; we raise them as errors instead
        log = logging.getLogger("paramiko")
        if not log.handlers:
            log.addHandler(logging.NullHandler())

        spec = self.spec
        client = paramiko.SSHClient()
        known_path = os.path.expanduser(spec.known_hosts or "~/.ssh/known_hosts")
        keyscan = f"ssh-keyscan -p {spec.port} {spec.host}"
        if not os.path.exists(known_path):
            if not spec.trust_new_host_key:
                raise HostKeyError(
                    f"{self.describe()}: known_hosts file {known_path} does not exist, so the "
                    f"board's host key cannot be checked. Add it ({keyscan} >> {known_path}) "
                    "or set trust_new_host_key = true")
            os.makedirs(os.path.dirname(known_path) or ".", exist_ok=True)
            with open(known_path, "a"):
                pass
            os.chmod(known_path, 0o600)
        known = KnownHosts.read(known_path)
        known.install(client)
        client.set_missing_host_key_policy(
            policy(known, bool(spec.trust_new_host_key), self.describe(), keyscan))
        key_file = os.path.expanduser(spec.key_file) if spec.key_file else None
        sock = None
        try:
            if spec.proxy_command:   # the user's own ProxyCommand / ProxyJump, as ssh runs it
                sock = paramiko.ProxyCommand(spec.proxy_command)
            client.connect(spec.host, port=int(spec.port), username=spec.user or None, sock=sock,
                           key_filename=key_file, look_for_keys=key_file is None,
                           allow_agent=key_file is None, timeout=spec.connect_timeout,
                           banner_timeout=spec.connect_timeout,
                           auth_timeout=spec.connect_timeout)
        except paramiko.BadHostKeyException as exc:
            _close(client, sock)
            raise HostKeyError(
                f"{self.describe()}: the host key changed (got {exc.key.get_name()} "
                f"{exc.key.get_fingerprint().hex()}, known_hosts {known_path} has a different "
                "key). Refusing to connect. If the board was reinstalled, remove the old "
                f"key with ssh-keygen -f {known_path} -R '[{spec.host}]:{spec.port}'") from None
        except HostKeyError:
            _close(client, sock)
            raise
        except paramiko.AuthenticationException as exc:
            _close(client, sock)
            raise TransportError(f"{self.describe()}: authentication failed for user "
                                 f"{spec.user!r} ({exc})") from None
        except paramiko.SSHException as exc:
            _close(client, sock)
            raise TransientTransportError(f"{self.describe()}: SSH failed: {exc}") from None
        except (OSError, EOFError) as exc:
            _close(client, sock)
            raise TransientTransportError(f"{self.describe()}: cannot connect: {exc}") \
                from None
        client.get_transport().set_keepalive(int(spec.keepalive))
        return client

    # -- commands --------------------------------------------------------------------------
    def _exec(self, command: str, deadline_s: float) -> ShellResult:
        import paramiko

        client = self._client()
        transport = client.get_transport()
        try:
            chan = transport.open_session(timeout=min(deadline_s, 15.0))
            chan.exec_command(command)   # stdin stays open: the guard's sign of life
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.drop_connection()
            raise TransientTransportError(f"{self.describe()}: cannot start a command: "
                                          f"{str(exc) or type(exc).__name__}") from None
        try:
            return self._read(chan, transport, deadline_s)
        finally:
            chan.close()

    def _read(self, chan, transport, deadline_s: float) -> ShellResult:
        out, err = bytearray(), bytearray()
        end = time.monotonic() + deadline_s
        while True:
            while chan.recv_ready():
                out += chan.recv(1 << 16)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(1 << 16)
            if chan.exit_status_ready():
                if not chan.recv_ready() and not chan.recv_stderr_ready():
                    code = chan.recv_exit_status()  # ready: does not block
                    if code == -1 and not transport.is_active():
                        # paramiko's "closed without an exit status": the link dropped
                        self.drop_connection()
                        raise TransientTransportError(
                            f"{self.describe()}: the connection dropped while a command ran")
                    return ShellResult(code, out.decode(errors="replace"),
                                       err.decode(errors="replace"))
                continue
            if not transport.is_active() or chan.closed:
                self.drop_connection()
                raise TransientTransportError(
                    f"{self.describe()}: the connection dropped while a command ran")
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise CommandTimeout(
                    f"{self.describe()}: no answer within {deadline_s:g} s (the link may "
                    "hang); gave up on the command")
            if not chan.status_event.wait(0.0):
                select.select([chan], [], [], min(remaining, 0.02))

    # -- files ----------------------------------------------------------------------------
    def _sftp_client(self, timeout: float):
        import paramiko

        if self._sftp is None or self._sftp.get_channel().closed:
            try:
                self._sftp = self._client().open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.drop_connection()
                raise TransientTransportError(f"{self.describe()}: cannot open SFTP: {exc}") \
                    from None
        self._sftp.get_channel().settimeout(timeout)
        return self._sftp

    def _push(self, local: str, remote: str, timeout: float) -> None:
        self._file_op("push", local, remote, timeout,
                      lambda s: s.put(local, remote, confirm=True))

    def pull(self, remote: str, local: str, timeout: float = 300.0) -> None:
        self._file_op("pull", remote, local, timeout, lambda s: s.get(remote, local))

    def _file_op(self, what: str, src: str, dst: str, timeout: float, op) -> None:
        import paramiko

        sftp = self._sftp_client(timeout)
        try:
            op(sftp)
        except socket.timeout:
            self.drop_connection()
            raise CommandTimeout(f"{self.describe()}: {what} {src} -> {dst} stalled for "
                                 f"{timeout:g} s") from None
        except (paramiko.SSHException, EOFError, ConnectionError) as exc:
            self.drop_connection()
            raise TransientTransportError(
                f"{self.describe()}: {what} {src} -> {dst} failed: "
                f"{str(exc) or type(exc).__name__}") from None
        except OSError as exc:  # SFTP status errors (no such file, permission) are OSErrors
            client = _POOL.get(self._key)
            t = client.get_transport() if client is not None else None
            if t is None or not t.is_active():
                self.drop_connection()
                raise TransientTransportError(
                    f"{self.describe()}: {what} {src} -> {dst} failed: {exc}") from None
            raise TransportError(f"{self.describe()}: {what} {src} -> {dst} failed: {exc}") \
                from None

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001 - closing a broken channel may raise anything
                pass
            self._sftp = None


def _close(client, sock) -> None:
    """A failed connect: the client, and the proxy command's process if one was started."""
    client.close()
    if sock is not None:
        try:
            sock.close()
        except Exception:   # the proxy process may be gone already
            pass
