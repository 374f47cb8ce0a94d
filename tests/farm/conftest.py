"""Fixtures of the device-farm tests: real parts only.

* models: a tiny ONNX (onnx.helper, seeded weights, run by onnxruntime) and the
  same net converted to .mnn by MNN's own converter; one copy carries a hostile
  file name (spaces, quotes, ``;``, ``$(...)``).
* ``sshd``: a real OpenSSH server on 127.0.0.1 (throwaway keys) plays the board.
* ``adb_server`` + ``phone``: the real adb server on a private port, connected to
  the ADB device simulator.
Missing system parts skip these tests, unless EDGERT_REQUIRE_ALL=1 (CI); the
isolated-load cache and the host device's workdir live in the session's temp
folder (tests/conftest.py sets EDGERT_CACHE_DIR).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import require_tool
from tests.farm.helpers import HOSTILE_NAME


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{"onnx": path, "mnn": path, "hostile": path} of one tiny net (MatMul + Relu)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((32, 16)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx_path = str(d / "tiny.onnx")
    onnx.save(model, onnx_path)
    import _tools
    from edgert.native_output import capture_native_output

    mnn_path = str(d / "tiny.mnn")
    with capture_native_output():
        ok = _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                                "--MNNModel", mnn_path, "--bizCode", "edgert"])
    assert ok and os.path.getsize(mnn_path) > 0
    hostile_dir = d / "hostile"
    hostile_dir.mkdir()
    hostile = str(hostile_dir / HOSTILE_NAME)
    # different bytes from tiny.onnx (another seed), so it is its own job and cache entry
    w2 = numpy_helper.from_array(rng.standard_normal((32, 16)).astype(np.float32), "W")
    model.graph.initializer[0].CopyFrom(w2)
    onnx.save(model, hostile)
    return {"onnx": onnx_path, "mnn": mnn_path, "hostile": hostile}


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    from device_farm.testing import sshd as sshd_mod
    from device_farm.transports.ssh import close_pool

    require_tool("sshd")
    require_tool("ssh-keygen")
    server = sshd_mod.SSHServer(str(tmp_path_factory.mktemp("sshd"))).start()
    yield server
    close_pool()
    server.stop()


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory):
    from device_farm.testing import adb_server as adb_mod

    require_tool("adb")
    server = adb_mod.AdbServer(str(tmp_path_factory.mktemp("adbhome"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def phone(tmp_path_factory, adb_server):
    """A simulated Pixel 7 connected to the private adb server (shared by tests
    that do not break it)."""
    from device_farm.testing.adb_server import SimulatedPhone

    p = SimulatedPhone(str(tmp_path_factory.mktemp("phone"))).start()
    adb_server.connect(p.address)
    yield p
    p.stop()


@pytest.fixture
def own_phone(tmp_path, adb_server):
    """A simulated phone of one test's own (for tests that kill or break it)."""
    from device_farm.testing.adb_server import SimulatedPhone

    p = SimulatedPhone(str(tmp_path / "own_phone"), serial="OWN0001").start()
    adb_server.connect(p.address)
    yield p
    p.stop()
    adb_server.adb("disconnect", p.address)


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """Run in an empty folder: an injected `touch INJECTED` would land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's binaries) on a 127.0.0.1 port, run as the
    `postgres` user when the tests run as root; one per session, torn down at the end."""
    from device_farm.testing.postgres import PostgresServer, find_bindir

    if find_bindir() is None:
        require_tool("pg_ctl")   # skips, or fails under EDGERT_REQUIRE_ALL=1
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_store(postgres, request):
    """A fresh database of that server for one test: its postgresql:// URL."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return postgres.create_database(name)


@pytest.fixture
def agents():
    """Agents a test starts (``agents.append(AgentProcess(...))``): any still running at the
    end of the test, passed or failed, is killed (by its own PID)."""
    started = []
    yield started
    for agent in started:
        if agent.proc.poll() is None:
            agent.kill()
