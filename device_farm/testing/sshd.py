"""A throwaway OpenSSH server on 127.0.0.1 that plays an SSH board in tests and
benchmarks: fresh host and user keys in a temp folder, its own
AuthorizedKeysFile and known_hosts, run as the current user (root or not).

Also ``LinkProxy``, a TCP forwarder in front of it that can cut the link
(connections reset: a board that went away) or freeze it (bytes stop flowing,
sockets stay open: a hung network), the two ways a board disappears.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import List, Optional

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def descendants(pid: int) -> List[int]:
    """PIDs of every process below ``pid`` (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def available() -> Optional[str]:
    """None when a test sshd can run here, else why not."""
    if not os.path.exists(SSHD):
        return f"{SSHD} not installed (apt-get install openssh-server)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen not installed (apt-get install openssh-client)"
    return None


class SSHServer:
    """``with SSHServer(folder) as s:`` -> s.port, s.user, s.user_key, s.known_hosts."""

    def __init__(self, folder: str) -> None:
        self.dir = os.path.abspath(folder)
        self.port = 0
        self.user = getpass.getuser()
        self.user_key = os.path.join(self.dir, "user_key")
        self.host_key = os.path.join(self.dir, "host_key")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.proc: Optional[subprocess.Popen] = None

    def _keygen(self, path: str) -> None:
        if not os.path.exists(path):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path],
                           check=True, stdin=subprocess.DEVNULL)

    def start(self) -> "SSHServer":
        os.makedirs(self.dir, exist_ok=True)
        self._keygen(self.host_key)
        self._keygen(self.user_key)
        auth = os.path.join(self.dir, "authorized_keys")
        shutil.copyfile(self.user_key + ".pub", auth)
        os.chmod(auth, 0o600)
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privsep dir as root
        self.port = self.port or free_port()
        config = os.path.join(self.dir, "sshd_config")
        with open(config, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {os.path.join(self.dir, 'sshd.pid')}
AuthorizedKeysFile {auth}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 50
MaxSessions 64
LogLevel ERROR
""")
        self.write_known_hosts()
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "sshd.log"), "ab"),
                                     start_new_session=True)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            with open(os.path.join(self.dir, "sshd.log")) as f:
                raise RuntimeError(f"sshd did not start: {f.read()[-2000:]}") from None
        return self

    def write_known_hosts(self, path: Optional[str] = None, key_file: Optional[str] = None,
                          port: Optional[int] = None) -> str:
        """A known_hosts line for this server (``key_file``: pretend another host key;
        ``port``: as seen through a proxy on another port)."""
        path = path or self.known_hosts
        with open((key_file or self.host_key) + ".pub") as f:
            kind, b64 = f.read().split()[:2]
        with open(path, "w") as f:
            f.write(f"[127.0.0.1]:{port or self.port} {kind} {b64}\n")
        return path

    def stop(self) -> None:
        """Stop the listener and every session it forked (sessions call setsid)."""
        if self.proc is None:
            return
        pids = descendants(self.proc.pid)
        for pid in [self.proc.pid] + pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> "SSHServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LinkProxy:
    """127.0.0.1:port -> target port, with ``cut()`` and ``freeze()`` faults."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self.port = self._srv.getsockname()[1]
        self._socks: List[socket.socket] = []
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                a, _ = self._srv.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            with self._lock:
                self._socks += [a, b]
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            while self._frozen.is_set() and not self._closed.is_set():
                time.sleep(0.05)
            if self._closed.is_set():
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def freeze(self) -> None:
        """Stop moving bytes; keep every socket open."""
        self._frozen.set()

    def cut(self) -> None:
        """Reset every connection and stop accepting new ones."""
        self._closed.set()
        self._srv.close()
        with self._lock:
            for s in self._socks:
                try:
                    # linger 0: close() sends a reset, like a link that died
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                except OSError:
                    pass

    close = cut
