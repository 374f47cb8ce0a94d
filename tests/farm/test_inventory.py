"""devices.toml: parsing, checking, selecting."""
from __future__ import annotations

import os

import pytest

from device_farm.inventory import HOST_NAME, InventoryError, load_inventory
from device_farm.errors import DeviceError

GOOD = """
[[device]]
name = "pixel7"
transport = "adb"
serial = "28031FDH2000AB"
adb_server = "usbhost1:5037"
tags = ["android", "arm64"]
cpu_mask = "c0"
runners = { tflite = "litert_benchmark_model", mnn = "mnn_benchmark" }
python = ""
[device.binaries]
benchmark_model = "tools/benchmark_model"
mnn_benchmark = "device:/data/local/tmp/benchmark.out"
mnn_libs = ["tools/libMNN.so"]

[[device]]
name = "orin"
transport = "ssh"
host = "10.0.0.7"
user = "nvidia"
key_file = "keys/orin"
known_hosts = "~/farm_known_hosts"
tags = ["jetson", "arm64"]
env = { OMP_NUM_THREADS = "4" }

[[device]]
name = "bench-host"
transport = "local"
"""


def _write(tmp_path, text):
    p = tmp_path / "devices.toml"
    p.write_text(text)
    return str(p)


def test_reads_every_kind(tmp_path):
    inv = load_inventory(_write(tmp_path, GOOD))
    assert inv.names() == ["pixel7", "orin", "bench-host"]
    pixel, orin, local = inv.devices
    assert (pixel.serial, pixel.adb_server, pixel.cpu_mask) == ("28031FDH2000AB",
                                                               "usbhost1:5037", "c0")
    assert pixel.workdir == "/data/local/tmp/edgert" and pixel.python == ""
    assert pixel.binaries["benchmark_model"] == str(tmp_path / "tools" / "benchmark_model")
    assert pixel.binaries["mnn_benchmark"] == "device:/data/local/tmp/benchmark.out"
    assert pixel.binaries["mnn_libs"] == [str(tmp_path / "tools" / "libMNN.so")]
    assert orin.port == 22 and orin.key_file == str(tmp_path / "keys" / "orin")
    assert orin.known_hosts == os.path.expanduser("~/farm_known_hosts")
    assert orin.trust_new_host_key is False and orin.env == {"OMP_NUM_THREADS": "4"}
    assert local.transport == "local"
    assert [d.name for d in inv.select(tags=["arm64"])] == ["pixel7", "orin"]
    assert [d.name for d in inv.select(["orin", HOST_NAME])] == ["orin", HOST_NAME]


@pytest.mark.parametrize("text, message", [
    ('[[device]]\nname = "a"\ntransport = "ssh"\nhost = "h"\ntrust_new_hostkey = true\n',
     r"device 'a': unknown key 'trust_new_hostkey'"),
    ('[[device]]\nname = "a"\ntransport = "ssh"\n',
     r"device 'a': host: missing \(an ssh device needs it\)"),
    ('[[device]]\nname = "a"\ntransport = "usb"\n', "transport: must be one of"),
    ('[[device]]\nname = "a"\ntransport = "adb"\nserial = "s"\ncpu_mask = "big"\n',
     "cpu_mask: must be a hex string"),
    ('[[device]]\nname = "a b"\ntransport = "local"\n', "name: must be 1-64 letters"),
    ('[[device]]\nname = "a"\ntransport = "local"\n[[device]]\nname = "a"\n'
     'transport = "local"\n', "device 'a': name: used by more than one device"),
    ('[devices]\nx = 1\n', "unknown top-level key"),
    ('[[device]\n', "not valid TOML"),
    # the faults of issue 15: each one used to pass the check and fail later, or worse
    ('[[device]]\nname = "b"\ntransport = "ssh"\nhost = "h"\nport = "abc"\n',
     r"device 'b': port: must be an integer from 1 to 65535, not 'abc' \(a string\)"),
    ('[[device]]\nname = "b"\ntransport = "ssh"\nhost = "h"\nport = 70000\n',
     "device 'b': port: must be from 1 to 65535, not 70000"),
    ('[[device]]\nname = "b"\ntransport = "ssh"\nhost = 2130706433\n',
     r"device 'b': host: must be a string, not 2130706433 \(an integer\)"),
    ('[[device]]\nname = "b"\ntransport = "local"\npython = 3\n',
     "device 'b': python: must be a string, not 3"),
    ('[[device]]\nname = "b"\ntransport = "local"\nworkdir = 5\n',
     "device 'b': workdir: must be a string, not 5"),
    ('[[device]]\nname = "b"\ntransport = "local"\nworkdir = "rel/dir"\n',
     "device 'b': workdir: must be an absolute path"),
    ('[[device]]\nname = "b"\ntransport = "ssh"\nhost = "h"\nconnect_timeout = "10"\n',
     r"device 'b': connect_timeout: must be a number of seconds, not '10' \(a string\)"),
    ('[[device]]\nname = "b"\ntransport = "ssh"\nhost = "h"\nkeepalive = "x"\n',
     "device 'b': keepalive: must be an integer from 0 to 3600, not 'x'"),
    ('[[device]]\nname = "b"\ntransport = "adb"\nserial = "s"\nadb_server = "nohostport"\n',
     "device 'b': adb_server: must be \"host:port\" with a port from 1 to 65535"),
    ('[[device]]\nname = "b"\ntransport = "ssh"\nhost = "h"\ntrust_new_host_key = "false"\n',
     r"device 'b': trust_new_host_key: must be true or false, not 'false' \(a string\) "
     r"\(write true or false without quotes\)"),
    ('[[device]]\nname = "b"\ntransport = "local"\nbinaries = "x"\n',
     r"device 'b': binaries: must be a table \(\[device.binaries\]\), not 'x'"),
    ('[[device]]\nname = "b"\ntransport = "local"\n[device.binaries]\nmnn_libs = [1]\n',
     "device 'b': binaries: mnn_libs must be paths"),
    ('[[device]]\nname = "b"\ntransport = "adb"\nserial = "s"\nport = 5555\n',
     "device 'b': port: applies to ssh devices, not to an adb device"),
    ('[[device]]\nname = "b"\ntransport = "local"\nrunners = { tflite = "nope" }\n',
     "device 'b': runners: tflite = 'nope' is not one of edgert, litert_benchmark_model"),
    ('device = [1, 2]\n', r"device #1: must be a table \(\[\[device\]\]\), not 1"),
])
def test_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(DeviceError, match=message):
        load_inventory(_write(tmp_path, text))


def test_every_problem_is_reported_at_once(tmp_path):
    text = ('[[device]]\nname = "a"\ntransport = "ssh"\nhost = "h"\nport = "22"\n'
            'trust_new_host_key = 1\n'
            '[[device]]\nname = "b"\ntransport = "adb"\nserial = 5\n'
            '[[device]]\nname = "a"\ntransport = "local"\n')
    with pytest.raises(InventoryError) as info:
        load_inventory(_write(tmp_path, text))
    assert info.value.problems == [
        "device 'a': port: must be an integer from 1 to 65535, not '22' (a string)",
        "device 'a': trust_new_host_key: must be true or false, not 1 (an integer)",
        "device 'b': serial: must be a string, not 5 (an integer)",
        "device 'a': name: used by more than one device"]
    assert str(info.value).startswith(f"{tmp_path / 'devices.toml'}: 4 problems")


def test_not_utf8_is_a_clear_error(tmp_path):
    p = tmp_path / "devices.toml"
    p.write_bytes(b'[[device]]\nname = "caf\xe9"\ntransport = "local"\n')
    with pytest.raises(DeviceError, match=r"not UTF-8 text \(byte 22 is 0xe9\)"):
        load_inventory(str(p))


def test_devices_built_in_code_are_checked_too():
    from device_farm.inventory import DeviceSpec, Inventory, host_device

    with pytest.raises(InventoryError, match="device 'b': port: must be from 1 to 65535"):
        Inventory([DeviceSpec(name="b", transport="ssh", host="h", port=70000)])
    with pytest.raises(InventoryError, match="trust_new_host_key: must be true or false"):
        Inventory([DeviceSpec(name="b", transport="ssh", host="h",
                              trust_new_host_key="false")])  # type: ignore[arg-type]
    with pytest.raises(InventoryError, match="used by more than one device"):
        Inventory([host_device(), host_device()])
    with pytest.raises(DeviceError, match="named twice in the selection: host"):
        Inventory([host_device()]).select(["host", "host"])


def test_cli_refuses_a_bad_inventory_before_connecting(tmp_path):
    """Nothing is planned, stored or connected: the problems and exit status 2."""
    import subprocess
    import sys

    toml = _write(tmp_path, '[[device]]\nname = "b"\ntransport = "ssh"\nhost = "127.0.0.1"\n'
                            'port = 1\nkeepalive = "x"\n')
    db = tmp_path / "r.sqlite"
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "bench", "m.onnx",
                          "--inventory", toml, "--db", str(db)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert "device 'b': keepalive: must be an integer" in out.stderr
    assert "Traceback" not in out.stderr and not db.exists()


def test_no_file_means_host_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGERT_DEVICES", raising=False)
    inv = load_inventory()
    assert inv.source is None and inv.names() == [HOST_NAME]
    with pytest.raises(DeviceError, match="no device 'nope'"):
        inv.get("nope")
    with pytest.raises(DeviceError, match="no such inventory file"):
        load_inventory(str(tmp_path / "missing.toml"))


def test_live_progress_table():
    from rich.console import Console

    from device_farm.progress import LiveProgress

    live = LiveProgress()
    events = [dict(kind="device_queued", device="pixel", total=4, skipped=1),
              dict(kind="device_ready", device="pixel", info={}),
              dict(kind="job_start", device="pixel", job="net.mnn [mnn fp32]", key="k"),
              dict(kind="job_done", device="pixel", job="net.mnn [mnn fp32]", key="k",
                   median_ms=12.345, throttled=True),
              dict(kind="job_failed", device="pixel", job="net.onnx [onnx fp32]", key="j",
                   error="boom"),
              dict(kind="device_waiting", device="orin",
                   holder={"pid": 42, "host": "lab1", "run_id": "r7", "device": "orin",
                           "since": "2026-01-01T10:00:00.000Z"}),
              dict(kind="job_not_run", device="pixel", job="x.tflite [tflite fp16]", key="x",
                   error="not run: device pixel stopped answering")]
    for ev in events:
        live(ev)
    console = Console(record=True, width=160)
    console.print(live.table())
    text = console.export_text()
    assert "pixel" in text and "4/4 (1 failed) (1 not run)" in text
    assert "net.onnx [onnx fp32]: boom" in text
    assert live.model.lines["orin"].status == "waiting"
    assert live.model.lines["orin"].last == ("busy: held by pid 42 on lab1 (run r7, device "
                                             "orin, since 2026-01-01T10:00:00.000Z)")
    assert live.model.lines["pixel"].status == "online"
