"""The transport contract on the local device: quoting, timeouts on both sides,
the content-addressed cache."""
from __future__ import annotations

import os
import time

import pytest

from device_farm.deploy import DeployCache, edgert_zip
from edgert.files import file_sha256
from device_farm.inventory import DeviceSpec
from device_farm.transports import CommandTimeout, open_transport
from device_farm.transports.base import TransportError, env_prefix
from tests.farm.helpers import HOSTILE_NAME, pids_matching


@pytest.fixture
def local(tmp_path):
    return open_transport(DeviceSpec(name="loc", transport="local", workdir=str(tmp_path / "w")))


def test_arguments_arrive_verbatim(local, clean_cwd):
    args = [HOSTILE_NAME, "$HOME", "a\nb", "`id`", "", "--x=';'"]
    res = local.run(["python3", "-c", "import sys; print(repr(sys.argv[1:]))", *args],
                    timeout=30, env={"FARM_V": "x y; $z"})
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == repr(args)
    assert not os.path.exists(clean_cwd / "INJECTED")
    assert not os.path.exists(clean_cwd / "INJECTED2")
    assert local.run(["sh", "-c", 'printf %s "$FARM_V"'], timeout=10,
                     env={"FARM_V": "x y; $z"}).stdout == "x y; $z"
    with pytest.raises(TransportError, match="not valid"):
        env_prefix({"A;B": "1"})


def test_exit_code_and_streams(local):
    res = local.shell("echo out; echo err >&2; exit 7", timeout=10)
    assert (res.exit_code, res.stdout, res.stderr) == (7, "out\n", "err\n")


def test_timeout_kills_the_command(local):
    marker = f"farm-local-hang-{os.getpid()}"
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="past its 1 s timeout"):
        local.shell(f"sh -c 'sleep 60; echo {marker}' & wait", timeout=1)
    assert time.monotonic() - t0 < 5
    time.sleep(0.2)
    assert pids_matching(marker) == []


def test_cache_pushes_each_content_once(local, tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(5000))
    cache = DeployCache(local, str(tmp_path / "w"))
    path = cache.ensure(str(a), name=HOSTILE_NAME)
    assert path == str(tmp_path / "w" / "cache" / file_sha256(str(a)) / HOSTILE_NAME)
    assert open(path, "rb").read() == a.read_bytes()
    assert cache.ensure(str(a), name=HOSTILE_NAME) == path
    assert (cache.pushes, cache.hits, local.push_count) == (1, 1, 1)
    # a new cache object (a new run) finds the file on the device: no push
    again = DeployCache(local, str(tmp_path / "w"))
    again.ensure(str(a), name=HOSTILE_NAME)
    assert (again.pushes, again.hits, local.push_count) == (0, 1, 1)
    # no .part file is left behind
    assert sorted(os.listdir(os.path.dirname(path))) == [HOSTILE_NAME]


def test_edgert_zip_is_reproducible(tmp_path):
    import zipfile

    z1 = edgert_zip(str(tmp_path / "z"))
    assert edgert_zip(str(tmp_path / "z")) == z1
    names = zipfile.ZipFile(z1).namelist()
    assert "edgert/__main__.py" in names and "edgert/cli/bench.py" in names
    assert not any("__pycache__" in n for n in names)


def test_prefetch_learns_presence_in_one_call(local, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a" * 100)
    b.write_bytes(b"b" * 100)
    DeployCache(local, str(tmp_path / "w")).ensure(str(a), name="a model.bin")
    cache = DeployCache(local, str(tmp_path / "w"))
    found = cache.prefetch([(file_sha256(str(a)), "a model.bin"),
                            (file_sha256(str(b)), "b.bin")])
    assert found == 1
    before = local.shell_count
    assert cache.ensure(str(a), name="a model.bin").endswith("/a model.bin")
    assert local.shell_count == before and cache.hits == 1  # known: no round trip


def test_a_python_path_with_spaces_and_quotes(tmp_path):
    """`python` may be any path (the probe quotes it; it used to be refused by a regex in
    the middle of the probe, which ended the device's thread)."""
    import sys

    from device_farm.inventory import Inventory
    from device_farm.worker import DeviceWorker

    folder = tmp_path / "my \"python\" it's"
    folder.mkdir()
    wrapper = folder / "py thon"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    spec = DeviceSpec(name="spaced", transport="local", python=str(wrapper),
                      workdir=str(tmp_path / "w"))
    Inventory([spec])                      # the schema takes it
    worker = DeviceWorker(spec)
    info = worker.connect(engines=True)
    assert info.python == ".".join(map(str, sys.version_info[:3]))
    assert "onnxruntime" in info.engines
