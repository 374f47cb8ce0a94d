"""The ADB transport through the real adb server, talking to the device simulator."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest

from device_farm.deploy import DeployCache
from device_farm.probes import probe_info
from device_farm.testing.adb_server import SimulatedPhone
from device_farm.transports import CommandTimeout, open_transport
from device_farm.transports.adb import list_devices
from device_farm.transports.base import TransientTransportError, guarded
from tests.farm.helpers import HOSTILE_NAME, pids_matching, phone_spec

pytestmark = pytest.mark.needs_adb


def test_the_real_adb_client_sees_the_phone(phone, adb_server):
    out = adb_server.adb("-s", phone.address, "shell", "getprop ro.product.model; exit 3")
    assert out.returncode == 3 and out.stdout.strip() == "Pixel 7"  # shell v2 exit code
    assert (phone.address, "device") in list_devices(adb_server.address)


def test_shell_v2_streams_and_quoting(phone, adb_server):
    t = open_transport(phone_spec(phone, adb_server))
    res = t.shell("echo out; echo err >&2; exit 42", timeout=20)
    assert (res.exit_code, res.stdout, res.stderr) == (42, "out\n", "err\n")
    args = [HOSTILE_NAME, "$(id)", "a  b"]
    res = t.run(["python3", "-c", "import sys; print(repr(sys.argv[1:]))", *args], timeout=30,
                cwd="/data/local/tmp")
    assert res.stdout.strip() == repr(args), res.stderr
    assert not os.path.exists(os.path.join(phone.root, "data_local_tmp", "INJECTED"))
    assert not os.path.exists(os.path.join(phone.root, "data_local_tmp", "INJECTED2"))


def test_sync_push_pull_and_cache(phone, adb_server, tmp_path):
    t = open_transport(phone_spec(phone, adb_server))
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(300_001))  # several 64 KiB DATA chunks and a short one
    cache = DeployCache(t, "/data/local/tmp/edgert-test")
    path = cache.ensure(str(src), name=HOSTILE_NAME)
    assert path.startswith("/data/local/tmp/edgert-test/cache/")
    host_copy = os.path.join(phone.root, "data_local_tmp", path[len("/data/local/tmp/"):])
    assert open(host_copy, "rb").read() == src.read_bytes()
    assert oct(os.stat(host_copy).st_mode & 0o777) == "0o644"
    again = DeployCache(t, "/data/local/tmp/edgert-test")
    assert again.ensure(str(src), name=HOSTILE_NAME) == path and again.pushes == 0
    t.pull(path, str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    with pytest.raises(Exception, match="does not exist"):
        t.pull("/data/local/tmp/nope.bin", str(tmp_path / "x"))


def test_probe_reads_the_phone(phone, adb_server):
    info = probe_info(open_transport(phone_spec(phone, adb_server)))
    assert (info.arch, info.soc, info.cores) == ("arm64-v8a", "Google GS201", 8)
    assert info.max_freqs_mhz == [1803, 2348, 2850]
    assert info.os == "Android 14 (SDK 34)"
    assert "timeout" in info.tools and "taskset" in info.tools


def test_device_side_timeout_kills_the_command(phone, adb_server):
    t = open_transport(phone_spec(phone, adb_server))
    marker = f"farm-adb-hang-{os.getpid()}"
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="stopped on the device"):
        t.shell(f"sh -c 'sleep 120; echo {marker}' & wait", timeout=1)
    assert time.monotonic() - t0 < 6
    time.sleep(0.3)
    assert pids_matching(marker) == []


def test_hung_link_client_gives_up_and_phone_cleans_up(own_phone, adb_server):
    """Output stops flowing (a hung USB link): the client's deadline fires and it closes
    the stream. The phone, as adbd does, only hangs up the shell and closes its stdin;
    the farm's guard sees the end of its stdin and stops the command's process group."""
    t = open_transport(phone_spec(own_phone, adb_server))
    marker = f"farm-adb-stall-{os.getpid()}"
    with open(os.path.join(own_phone.root, "faults.json"), "w") as f:
        json.dump({"stall_output": True}, f)
    t0 = time.monotonic()
    # the device-side timeout (30 s) is far away: only the client deadline can end this
    with pytest.raises(CommandTimeout, match="no answer before the deadline"):
        t._exec(guarded(f"echo start; sh -c 'sleep 120; echo {marker}' & wait", 30),
                deadline_s=2)
    assert time.monotonic() - t0 < 5
    time.sleep(0.5)
    assert pids_matching(marker) == []


def test_phone_unplugged_mid_command(own_phone, adb_server):
    t = open_transport(phone_spec(own_phone, adb_server))
    assert t.shell("echo up", timeout=20).stdout == "up\n"
    threading.Timer(0.5, own_phone.kill).start()
    t0 = time.monotonic()
    with pytest.raises(TransientTransportError):
        t.shell("sleep 5", timeout=20)
    assert time.monotonic() - t0 < 5
    with pytest.raises(TransientTransportError):
        t.shell("true", timeout=5)


def test_auth_handshake(tmp_path, adb_server):
    """A phone that requires AUTH: the adb server's key is offered (RSAPUBLICKEY) and
    accepted; on the next connection its signature of a fresh token verifies."""
    p = SimulatedPhone(str(tmp_path / "secure"), auth=True, serial="AUTH001").start()
    try:
        adb_server.connect(p.address)
        assert "AUTH public key accepted" in p.log()
        adb_server.adb("disconnect", p.address)
        adb_server.connect(p.address)
        log = p.log()
        assert "AUTH signature verified" in log
        t = open_transport(phone_spec(p, adb_server, "secure"))
        assert t.shell("getprop ro.soc.model", timeout=20).stdout == "GS201\n"
    finally:
        p.stop()
        adb_server.adb("disconnect", p.address)
