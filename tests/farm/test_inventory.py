"""devices.toml: parsing, checking, selecting."""
from __future__ import annotations

import os

import pytest

from device_farm.inventory import HOST_NAME, load_inventory
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
     r"device 'a': unknown key\(s\) trust_new_hostkey"),
    ('[[device]]\nname = "a"\ntransport = "ssh"\n', "a ssh device needs host"),
    ('[[device]]\nname = "a"\ntransport = "usb"\n', "transport must be one of"),
    ('[[device]]\nname = "a"\ntransport = "adb"\nserial = "s"\ncpu_mask = "big"\n',
     "cpu_mask must be a hex string"),
    ('[[device]]\nname = "a b"\ntransport = "local"\n', "name must be"),
    ('[[device]]\nname = "a"\ntransport = "local"\n[[device]]\nname = "a"\n'
     'transport = "local"\n', "used twice: a"),
    ('[devices]\nx = 1\n', "unknown top-level key"),
    ('[[device]\n', "not valid TOML"),
])
def test_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(DeviceError, match=message):
        load_inventory(_write(tmp_path, text))


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
    events = [dict(kind="device_queued", device="pixel", total=3, skipped=1),
              dict(kind="device_ready", device="pixel", info={}),
              dict(kind="job_start", device="pixel", job="net.mnn [mnn fp32]", key="k"),
              dict(kind="job_done", device="pixel", job="net.mnn [mnn fp32]", key="k",
                   median_ms=12.345, throttled=True),
              dict(kind="job_failed", device="pixel", job="net.onnx [onnx fp32]", key="j",
                   error="boom")]
    for ev in events:
        live(ev)
    console = Console(record=True, width=160)
    console.print(live.table())
    text = console.export_text()
    assert "pixel" in text and "3/3 (1 failed)" in text
    assert "net.onnx [onnx fp32]: boom" in text
    assert live.model.lines["pixel"].status == "online"
