"""A private adb server (the real one, Debian's ``adb``) on a free port, and
simulated phones started as child processes, for tests and benchmarks.

The server runs in the foreground (``adb -P PORT nodaemon server``) so its PID
is ours to stop, with HOME pointed at a temp folder so its key pair and
settings never touch the user's ~/.android.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from device_farm.testing.sshd import free_port, wait_port


def available() -> Optional[str]:
    return None if shutil.which("adb") else "adb not installed (apt-get install adb)"


class AdbServer:
    def __init__(self, home: str) -> None:
        self.home = os.path.abspath(home)
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=self.home, ANDROID_SDK_HOME=self.home, ANDROID_USER_HOME=
                   os.path.join(self.home, ".android"), ADB_MDNS="0", ADB_MDNS_OPENSCREEN="0")
        return env

    def adb(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run the real adb client against this server."""
        return subprocess.run(["adb", "-P", str(self.port), *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> "AdbServer":
        os.makedirs(os.path.join(self.home, ".android"), exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(["adb", "-P", str(self.port), "nodaemon", "server"],
                                     env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.home, "adb.log"), "ab"),
                                     start_new_session=True)
        wait_port(self.port, 20)
        return self

    def connect(self, addr: str, timeout: float = 20.0) -> None:
        """``adb connect ADDR`` and wait until the device is online."""
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            out = self.adb("connect", addr)
            last = out.stdout + out.stderr
            state = self.adb("-s", addr, "get-state")
            if state.stdout.strip() == "device":
                return
            time.sleep(0.2)
        raise RuntimeError(f"adb connect {addr} failed: {last.strip()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.adb("kill-server", timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> "AdbServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SimulatedPhone:
    """A simulated phone in a child process (so a test can pull its plug: ``kill``)."""

    def __init__(self, root: str, phone: str = "pixel7", auth: bool = False,
                 serial: Optional[str] = None, port: int = 0) -> None:
        self.root, self.phone, self.auth, self.serial = root, phone, auth, serial
        self.port = port
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "SimulatedPhone":
        args = [sys.executable, "-m", "device_farm.testing.adb_sim", "--root", self.root,
                "--phone", self.phone, "--port", str(self.port)]
        if self.auth:
            args.append("--auth")
        if self.serial:
            args += ["--serial", self.serial]
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"simulated phone did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def kill(self) -> None:
        """Pull the plug: the process dies at once (commands it started keep running
        until their own timeout, as on a phone that lost its USB link)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        """Orderly stop: the simulator kills the commands it started."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log(self) -> List[str]:
        try:
            with open(os.path.join(self.root, "sim.log")) as f:
                return f.read().splitlines()
        except OSError:
            return []
