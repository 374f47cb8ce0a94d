"""The host itself as a device, so the farm works with nothing attached.

Commands run through ``sh`` exactly as on a board (same ``timeout`` wrapper,
same quoting), so the local device exercises the code paths the remote ones use.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

from device_farm.transports.base import CommandTimeout, ShellResult, Transport, TransportError


class LocalTransport(Transport):
    kind = "local"

    def _exec(self, command: str, deadline_s: float) -> ShellResult:
        # The command's stdin is a pipe whose write end only this process holds (pipes
        # are not inherited by other children): if this process dies, the device-side
        # guard sees end-of-file and stops the benchmark, as on a board.
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(["sh", "-c", "exec " + command], stdin=read_end,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        finally:
            os.close(read_end)
        try:
            out, err = proc.communicate(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            os.close(write_end)     # the guard stops the command's process group
            write_end = -1
            _kill_group(proc.pid)
            proc.communicate()
            raise CommandTimeout(f"{self.describe()}: no answer within {deadline_s:g} s; "
                                 "the command was killed") from None
        finally:
            if write_end >= 0:
                os.close(write_end)
        return ShellResult(proc.returncode, out.decode(errors="replace"),
                           err.decode(errors="replace"))

    def _push(self, local: str, remote: str, timeout: float) -> None:
        try:
            shutil.copyfile(local, remote)
        except OSError as exc:
            raise TransportError(f"{self.describe()}: copy {local} -> {remote} failed: {exc}") \
                from None

    def pull(self, remote: str, local: str, timeout: float = 300.0) -> None:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise TransportError(f"{self.describe()}: copy {remote} -> {local} failed: {exc}") \
                from None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
