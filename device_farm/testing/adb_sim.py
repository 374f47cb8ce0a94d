"""A simulated Android device speaking the device side of the ADB protocol over
TCP, so the real adb server can ``adb connect 127.0.0.1:PORT`` to it and the farm
talks to it through the real adb client stack.

Hand-written because no phone can exist here: it is the lowest level at which
one can be simulated (the wire protocol), so everything above it (adb server,
adbutils, our transport) is the real thing. Implemented from AOSP's
protocol.txt, SYNC.TXT and shell_protocol.h:

* transport: 24-byte little-endian headers (command, arg0, arg1, length,
  checksum, magic = command ^ 0xffffffff); CNXN with a banner of properties and
  features; optional AUTH (TOKEN -> SIGNATURE verified against known keys, or
  RSAPUBLICKEY accepted as if the user tapped "Allow"); OPEN/OKAY/WRTE/CLSE with
  one WRTE in flight per stream.
* ``shell,v2[,args]:CMD`` (stdout/stderr/exit packets: 1-byte id + 4-byte length),
  ``shell:CMD`` and ``exec:CMD`` (raw output); commands run with ``sh -c`` in
  their own process group, their stdin fed from the stream; when the host
  closes the stream the shell gets SIGHUP and its stdin is closed, as adbd does
  (only the shell's own process is signalled, not what it started).
* ``sync:`` with STAT, LIST, SEND (DATA chunks, DONE + mtime -> OKAY/FAIL), RECV
  (DATA..., DONE; FAIL for a missing file) and QUIT.

Paths go through ``PhoneImage`` (``/data/local/tmp`` is a sandbox folder; probe
files come from a phone fixture). Faults for tests: ``<root>/faults.json`` is
read at each use: ``{"push_fail_after_bytes": N, "push_fail_count": K}`` aborts
the next K pushes (to paths containing ``push_fail_match``, if given) after N
bytes, leaving the partial file (the worst case); and
``{"stall_output": true}`` stops sending shell output (a hung link).

Run as ``python -m device_farm.testing.adb_sim --root DIR [--port P] [--auth]``;
it prints ``PORT <n>`` once listening.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Dict, List, Optional

from device_farm.testing.phone_image import PhoneImage, load_phone


def _cmd(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


A_SYNC, A_CNXN, A_AUTH, A_OPEN = _cmd(b"SYNC"), _cmd(b"CNXN"), _cmd(b"AUTH"), _cmd(b"OPEN")
A_OKAY, A_CLSE, A_WRTE = _cmd(b"OKAY"), _cmd(b"CLSE"), _cmd(b"WRTE")
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
SYNC_DATA_MAX = 64 * 1024
FEATURES = ("shell_v2", "cmd", "fixed_push_mkdir")


def pack(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return struct.pack("<6I", command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF,
                       command ^ 0xFFFFFFFF) + data


def adb_pubkey_to_rsa(blob: bytes):
    """The RSA public key in adb's format (base64 of len, n0inv, n[len], rr[len], e)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    raw = base64.b64decode(blob.split(b"\0")[0].split(b" ")[0])
    words = struct.unpack_from("<I", raw)[0]
    n = int.from_bytes(raw[8:8 + 4 * words], "little")
    e = struct.unpack_from("<I", raw, 8 + 8 * words)[0]
    return rsa.RSAPublicNumbers(e, n).public_key()


def verify_token(pubkey, token: bytes, signature: bytes) -> bool:
    """adb signs the 20-byte token as if it were a SHA-1 digest (RSA PKCS#1 v1.5)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    try:
        pubkey.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        return True
    except (InvalidSignature, ValueError):
        return False


class Stream:
    """One ADB stream (our side): flow-controlled writes, buffered reads."""

    def __init__(self, conn: "Connection", local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.ready = threading.Event()
        self.ready.set()  # the host's OPEN implies a READY
        self.closed = threading.Event()
        self._buf = bytearray()
        self._cond = threading.Condition()
        self.on_close = None

    def send(self, data: bytes) -> bool:
        step = self.conn.max_payload
        for i in range(0, len(data), step):
            while not self.ready.wait(0.1):
                if self.closed.is_set() or self.conn.dead.is_set():
                    return False
            if self.closed.is_set():
                return False
            self.ready.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i:i + step])
        return True

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    def read_exact(self, n: int) -> Optional[bytes]:
        with self._cond:
            while len(self._buf) < n:
                if self.closed.is_set():
                    return None
                self._cond.wait(0.1)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
            self.conn.streams.pop(self.local_id, None)

    def closed_by_host(self) -> None:
        self.closed.set()
        with self._cond:
            self._cond.notify_all()
        if self.on_close:
            self.on_close()


class Connection:
    """One TCP connection from an adb server."""

    def __init__(self, sim: "AdbDeviceSim", sock: socket.socket) -> None:
        self.sim, self.sock = sim, sock
        self.max_payload = 4096
        self.streams: Dict[int, Stream] = {}
        self._next_id = 1
        self._wlock = threading.Lock()
        self.dead = threading.Event()
        self.online = False
        self._token = b""

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        try:
            with self._wlock:
                self.sock.sendall(pack(command, arg0, arg1, data))
        except OSError:
            self.dead.set()

    def _recv_exact(self, n: int) -> Optional[bytes]:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def serve(self) -> None:
        try:
            while not self.dead.is_set():
                head = self._recv_exact(24)
                if head is None:
                    break
                command, arg0, arg1, length, _check, magic = struct.unpack("<6I", head)
                if magic != command ^ 0xFFFFFFFF:
                    break  # protocol.txt: an invalid header closes the connection
                data = self._recv_exact(length) if length else b""
                if data is None:
                    break
                self._dispatch(command, arg0, arg1, data)
        finally:
            self.dead.set()
            for s in list(self.streams.values()):
                s.closed_by_host()
            try:
                self.sock.close()
            except OSError:
                pass

    def _banner(self) -> bytes:
        props = ";".join(f"{k}={v}" for k, v in self.sim.phone["banner"].items())
        return f"device::{props};features={','.join(FEATURES)}".encode()

    def _connect(self) -> None:
        self.online = True
        self.sim.log("CNXN sent")
        self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self._banner())

    def _new_token(self) -> None:
        self._token = secrets.token_bytes(20)
        self.send(A_AUTH, AUTH_TOKEN, 0, self._token)

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self.max_payload = max(4096, min(arg1, MAX_PAYLOAD))
            if self.sim.require_auth:
                self._new_token()
            else:
                self._connect()
        elif command == A_AUTH and self.sim.require_auth and not self.online:
            self._auth(arg0, data)
        elif not self.online:
            return  # nothing but CNXN/AUTH is valid before the connection is up
        elif command == A_OPEN:
            self._open(arg0, data.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == A_OKAY:
            s = self.streams.get(arg1)
            if s:
                s.ready.set()
        elif command == A_WRTE:
            s = self.streams.get(arg1)
            if s:
                s.feed(data)
                self.send(A_OKAY, s.local_id, s.remote_id)
        elif command == A_CLSE:
            s = self.streams.pop(arg1, None)
            if s:
                s.closed_by_host()

    def _auth(self, kind: int, data: bytes) -> None:
        if kind == AUTH_SIGNATURE:
            for key in self.sim.keys:
                if verify_token(key, self._token, data):
                    self.sim.log("AUTH signature verified")
                    return self._connect()
            self.sim.log("AUTH signature rejected")
            self._new_token()
        elif kind == AUTH_RSAPUBLICKEY:
            self.sim.keys.append(adb_pubkey_to_rsa(data))
            self.sim.log("AUTH public key accepted")
            self._connect()

    def _open(self, remote_id: int, service: str) -> None:
        handler = self.sim.service_for(service)
        if handler is None:
            self.send(A_CLSE, 0, remote_id)
            return
        local_id = self._next_id
        self._next_id += 1
        stream = Stream(self, local_id, remote_id)
        self.streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=self._run_service, args=(handler, stream, service),
                         daemon=True).start()

    def _run_service(self, handler, stream: Stream, service: str) -> None:
        try:
            handler(stream, service)
        finally:
            stream.close()


class AdbDeviceSim:
    """The simulated phone: a listening socket, a phone image, the services."""

    def __init__(self, root: str, phone: str = "pixel7", port: int = 0,
                 require_auth: bool = False, serial: Optional[str] = None) -> None:
        self.phone = load_phone(phone)
        self.image = PhoneImage(root, self.phone).build()
        self.root = self.image.root
        self.require_auth = require_auth
        self.keys: List[object] = []
        self.serial = serial or str(self.phone.get("serial", "SIM0001"))
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", port))
        self._srv.listen(8)
        self.port = self._srv.getsockname()[1]
        self._conns: List[Connection] = []
        self._procs: Dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._log_path = os.path.join(self.root, "sim.log")

    def log(self, text: str) -> None:
        with self._lock, open(self._log_path, "a") as f:
            f.write(text + "\n")

    def faults(self) -> Dict[str, object]:
        try:
            with open(os.path.join(self.root, "faults.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _set_fault(self, key: str, value) -> None:
        faults = self.faults()
        faults[key] = value
        with open(os.path.join(self.root, "faults.json"), "w") as f:
            json.dump(faults, f)

    def serve_forever(self) -> None:
        while True:
            try:
                sock, _ = self._srv.accept()
            except OSError:
                return
            conn = Connection(self, sock)
            self._conns.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def start(self) -> "AdbDeviceSim":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Drop off the bus: close everything, kill every command still running."""
        try:
            self._srv.close()
        except OSError:
            pass
        for c in self._conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for proc in list(self._procs.values()):
            _killpg(proc.pid)

    # -- services ------------------------------------------------------------------------------
    def service_for(self, service: str):
        if service.startswith(("shell:", "shell,")):
            args, _, command = service.partition(":")
            return lambda s, _: self._shell(s, command, v2="v2" in args.split(","))
        if service.startswith("exec:"):
            return lambda s, _: self._shell(s, service[5:], v2=False)
        if service == "sync:":
            return self._sync
        return None

    def _shell(self, stream: Stream, command: str, v2: bool) -> None:
        self.log(f"shell{',v2' if v2 else ''}: {command}")
        if not command.strip():
            msg = b"interactive shells are not simulated\n"
            stream.send(_v2(2, msg) + _v2(3, b"\x01") if v2 else msg)
            return
        proc = subprocess.Popen(["sh", "-c", self.image.to_host(command)], cwd=self.image.tmp,
                                env=self.image.env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        with self._lock:
            self._procs[proc.pid] = proc
        # adbd on a closed stream: SIGHUP to the shell's own process (not its group) and
        # its pipes closed (shell_service.cpp); what the shell started is its business
        stream.on_close = lambda: _hang_up(proc)
        threading.Thread(target=self._feed_stdin, args=(stream, proc, v2), daemon=True).start()
        lock = threading.Lock()

        def pump(pipe, kind: int) -> None:
            with pipe:
                for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):
                    while self.faults().get("stall_output") and not stream.closed.is_set():
                        threading.Event().wait(0.1)
                    if stream.closed.is_set():
                        return      # adbd closed the pipe: the next write gets SIGPIPE
                    data = self.image.to_device(chunk.decode("utf-8", "replace")).encode()
                    with lock:
                        stream.send(_v2(kind, data) if v2 else data)

        pumps = [threading.Thread(target=pump, args=(proc.stdout, 1), daemon=True),
                 threading.Thread(target=pump, args=(proc.stderr, 2), daemon=True)]
        for t in pumps:
            t.start()
        code = proc.wait()
        for t in pumps:
            t.join()
        with self._lock:
            self._procs.pop(proc.pid, None)
        if v2 and not stream.closed.is_set():
            stream.send(_v2(3, bytes([code & 0xFF if code >= 0 else 0x80 | -code])))

    @staticmethod
    def _feed_stdin(stream: Stream, proc: subprocess.Popen, v2: bool) -> None:
        """The host's writes to the stream are the command's stdin (shell v2: packets of
        id 0; id 3 closes stdin); the stream's end closes it."""
        try:
            while True:
                if v2:
                    head = stream.read_exact(5)
                    if head is None:
                        return
                    n = struct.unpack("<I", head[1:5])[0]
                    data = stream.read_exact(n) if n else b""
                    if data is None or head[0] == 3:
                        return
                    if head[0] != 0:
                        continue        # window size changes and the like
                else:
                    data = stream.read_exact(1)
                    if data is None:
                        return
                proc.stdin.write(data)
                proc.stdin.flush()
        except (OSError, ValueError):
            return                      # the command closed its stdin or ended
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def _sync(self, stream: Stream, _service: str) -> None:
        while True:
            head = stream.read_exact(8)
            if head is None:
                return
            req, length = head[:4], struct.unpack("<I", head[4:])[0]
            if req == b"QUIT":
                return
            arg = stream.read_exact(length) if length else b""
            if arg is None:
                return
            path = arg.decode("utf-8", "replace")
            handler = {b"STAT": self._stat, b"LIST": self._list, b"SEND": self._send,
                       b"RECV": self._recv}.get(req)
            if handler is None:
                stream.send(_fail(f"unknown sync request {req!r}"))
                return
            if handler(stream, path) is False:
                return

    def _stat(self, stream: Stream, path: str) -> None:
        try:
            st = os.stat(self.image.to_host(path))
            stream.send(b"STAT" + struct.pack("<III", st.st_mode, st.st_size & 0xFFFFFFFF,
                                              int(st.st_mtime)))
        except OSError:
            stream.send(b"STAT" + struct.pack("<III", 0, 0, 0))

    def _list(self, stream: Stream, path: str) -> None:
        host = self.image.to_host(path)
        out = bytearray()
        try:
            for name in [".", ".."] + sorted(os.listdir(host)):
                st = os.stat(os.path.join(host, name))
                raw = name.encode()
                out += b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF,
                                             int(st.st_mtime), len(raw)) + raw
        except OSError:
            pass
        stream.send(bytes(out) + b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))

    def _send(self, stream: Stream, spec: str):
        path, _, mode = spec.rpartition(",")
        host = self.image.to_host(path)
        faults = self.faults()
        fail_after = faults.get("push_fail_after_bytes") if faults.get("push_fail_count") else None
        if fail_after is not None and str(faults.get("push_fail_match", "")) not in path:
            fail_after = None
        try:
            os.makedirs(os.path.dirname(host), exist_ok=True)  # adbd makes parent folders
            f = open(host, "wb")
        except OSError as exc:
            stream.send(_fail(f"couldn't create file: {exc.strerror}"))
            return False
        got = 0
        with f:
            while True:
                head = stream.read_exact(8)
                if head is None:
                    return False
                kind, n = head[:4], struct.unpack("<I", head[4:])[0]
                if kind == b"DONE":
                    break
                data = stream.read_exact(n) if kind == b"DATA" else None
                if data is None:
                    return False
                f.write(data)
                got += len(data)
                if fail_after is not None and got >= int(fail_after):
                    self._set_fault("push_fail_count", int(faults["push_fail_count"]) - 1)
                    self.log(f"fault: push of {path} cut after {got} bytes")
                    return False  # the stream closes mid-transfer; the partial file stays
        try:
            os.chmod(host, int(mode or "644") & 0o7777)
            os.utime(host, (n, n))
        except (OSError, ValueError):
            pass
        stream.send(b"OKAY" + struct.pack("<I", 0))

    def _recv(self, stream: Stream, path: str) -> None:
        host = self.image.to_host(path)
        if not os.path.isfile(host):
            stream.send(_fail(f"remote object '{path}' does not exist"))
            return
        with open(host, "rb") as f:
            for chunk in iter(lambda: f.read(SYNC_DATA_MAX), b""):
                stream.send(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        stream.send(b"DONE" + struct.pack("<I", 0))


def _v2(kind: int, data: bytes) -> bytes:
    return bytes([kind]) + struct.pack("<I", len(data)) + data


def _fail(message: str) -> bytes:
    raw = message.encode()
    return b"FAIL" + struct.pack("<I", len(raw)) + raw


def _hang_up(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGHUP)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.stdin.close()
    except (OSError, ValueError):
        pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="simulated ADB device")
    ap.add_argument("--root", required=True, help="sandbox folder of the phone")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--phone", default="pixel7", help="fixture name or JSON path")
    ap.add_argument("--serial")
    ap.add_argument("--auth", action="store_true", help="require the AUTH handshake")
    args = ap.parse_args(argv)
    sim = AdbDeviceSim(args.root, args.phone, args.port, args.auth, args.serial)

    def bye(*_):
        sim.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    print(f"PORT {sim.port}", flush=True)
    sim.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
