"""A transport whose device set-up raises what no farm code expects (not an edgert
error), registered through the public registry as transport "broken". Two ways to
break, by device name: ``broken-init*`` raises while the transport is built,
anything else when the device is first asked something (the probe).

Importing this module registers it (the CLI test imports it in the child process).
"""
from __future__ import annotations

from device_farm.transports import register_transport
from device_farm.transports.base import ShellResult, Transport


class BrokenTransport(Transport):
    kind = "broken"

    def __init__(self, spec) -> None:
        super().__init__(spec)
        if spec.name.startswith("broken-init"):
            raise ZeroDivisionError("the transport could not even be built")

    def _exec(self, command: str, deadline_s: float) -> ShellResult:
        raise KeyError("a surprise in the middle of the probe")

    def _push(self, local: str, remote: str, timeout: float) -> None:
        raise AssertionError("never reached")

    def pull(self, remote: str, local: str, timeout: float = 300.0) -> None:
        raise AssertionError("never reached")


register_transport("broken", __name__, "BrokenTransport")
