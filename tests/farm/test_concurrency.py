"""Several farm processes, one set of devices: device locks between processes, cold
caches filled at once, and a killed client whose device-side runs stop with it.
Real parts: the host, a board behind the real sshd, a phone of the ADB simulator
behind the real adb server, and `edgert farm bench` as separate processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from device_farm.locks import DeviceBusy, FileLocks
from device_farm.store import ResultStore
from edgert.files import file_sha256
from tests.farm.helpers import board_toml, pids_matching

pytestmark = [pytest.mark.needs_sshd, pytest.mark.needs_adb]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _inventory(path, sshd, adb_server, phone, workdir) -> str:
    path.write_text(board_toml(sshd, workdir) + f"""
[[device]]
name = "pixel"
transport = "adb"
serial = "{phone.address}"
adb_server = "{adb_server.address}"
""")
    return str(path)


def _farm(args, cache_dir, **kw) -> subprocess.Popen:
    env = dict(os.environ, EDGERT_CACHE_DIR=cache_dir, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "edgert", "farm", "bench", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def _t(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def test_device_locks_hold_between_processes(tmp_path):
    """A lock held by another process blocks, names its holder, and is free the moment
    that process is killed (the kernel drops a dead process's flock)."""
    locks = FileLocks(str(tmp_path / "locks"))
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from device_farm.locks import FileLocks; "
         "lease = FileLocks(sys.argv[1]).try_acquire('ssh:board:22', {'pid': 'child', "
         "'run_id': 'r1'}); print('held' if lease else 'busy', flush=True); time.sleep(60)",
         str(tmp_path / "locks")], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert child.stdout.readline().strip() == "held"
        assert locks.try_acquire("ssh:board:22", {"pid": os.getpid()}) is None
        assert locks.holder("ssh:board:22")["run_id"] == "r1"
        waited = []
        t0 = time.monotonic()
        with pytest.raises(DeviceBusy, match=r"device ssh:board:22 is busy: held by pid child"):
            locks.acquire("ssh:board:22", {"pid": os.getpid()}, 0.5, on_wait=waited.append)
        assert 0.5 <= time.monotonic() - t0 < 2 and waited == [locks.holder("ssh:board:22")]
        lease = locks.try_acquire("ssh:other:22", {"pid": os.getpid()})
        assert lease is not None   # other devices are not held
        lease.release()
    finally:
        child.kill()
        child.wait()
    lease = locks.acquire("ssh:board:22", {"pid": os.getpid()}, 5.0)
    assert lease.waited_s < 0.5
    lease.release()


def test_two_farm_processes_on_the_same_devices(tmp_path, models, sshd, adb_server, own_phone):
    """Two `farm bench` processes at once, cold caches, the same three devices: every job
    ok, and on each device no two benchmarks overlapped, by the host's clock (the lock
    held) and by the device's own clock (/proc/uptime around each benchmark)."""
    toml = _inventory(tmp_path / "devices.toml", sshd, adb_server, own_phone,
                      tmp_path / "board-work")
    db = str(tmp_path / "r.sqlite")
    cache = str(tmp_path / "cache")           # cold: the host's workdir and zip cache too
    files = [models["onnx"], models["mnn"], models["hostile"]]
    procs = [_farm(files + ["--inventory", toml, "--devices", "host,board,pixel", "--db", db,
                            "--runs", "15", "--warmup", "2", "--cooldown", "1",
                            "--run-id", run, "--progress", "none", "--json"], cache)
             for run in ("first", "second")]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        summary = json.loads(out)
        assert (summary["planned"], summary["ok"], summary["failed"],
                summary["not_run"]) == (9, 9, 0, 0)
    with ResultStore(db) as store:
        rows = store.results("first") + store.results("second")
    assert len(rows) == 18 and {r["status"] for r in rows} == {"ok"}
    for device in ("host", "board", "pixel"):
        mine = sorted((r for r in rows if r["device"] == device),
                      key=lambda r: _t(r["started_at"]))
        assert len(mine) == 6 and {r["run_id"] for r in mine} == {"first", "second"}
        for a, b in zip(mine, mine[1:]):
            assert _t(a["finished_at"]) <= _t(b["started_at"]), (device, a["job_key"])
        up = sorted((json.loads(r["state_before_json"])["uptime_s"],
                     json.loads(r["state_after_json"])["uptime_s"]) for r in mine)
        for (s1, e1), (s2, e2) in zip(up, up[1:]):
            assert s1 < e1 <= s2 < e2, device
    # the two processes did meet: jobs waited for the other's lease, and took turns
    assert max(r["lock_wait_s"] for r in rows) > 0.1
    turns = {d: [r["run_id"] for r in sorted((r for r in rows if r["device"] == d),
                                             key=lambda r: _t(r["started_at"]))]
             for d in ("host", "board", "pixel")}
    assert max(sum(a != b for a, b in zip(t, t[1:])) for t in turns.values()) >= 2, turns
    # cold caches filled by both: every file once, whole, no upload left behind
    cache_host = os.path.join(cache, "farm", "host")
    for root in (str(tmp_path / "board-work"),
                 os.path.join(own_phone.root, "data_local_tmp", "edgert"), cache_host):
        cached = [os.path.join(d, n) for d, _, ns in os.walk(os.path.join(root, "cache"))
                  for n in ns]
        assert not [c for c in cached if ".part-" in c], root
        zipped = [c for c in cached if c.endswith("edgert.zip")]   # the host imports directly
        assert len(cached) - len(zipped) == 3 and len(zipped) == (root != cache_host)
        for c in cached:
            if not c.endswith("edgert.zip"):
                assert file_sha256(c) == os.path.basename(os.path.dirname(c))


def _bench_pids(sha: str):
    """Device-side `python -m edgert bench` processes of the model with this sha256."""
    out = []
    for pid in pids_matching(sha):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"-m" in argv and b"edgert" in argv and b"bench" in argv:
            out.append(pid)
    return out


def test_killing_the_client_ends_the_device_side_runs(tmp_path, models, sshd, adb_server,
                                                      own_phone):
    """kill -9 of `farm bench` while a long benchmark runs on each device: within seconds
    nothing of it runs anywhere (process group on the board and the host; on the phone
    only the shell gets SIGHUP, as from adbd, and the guard does the rest)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(models["onnx"])   # weights of its own: a sha256 no other process carries
    w = np.random.default_rng(os.getpid()).standard_normal((32, 16)).astype(np.float32)
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W"))
    model = str(tmp_path / "killme.onnx")
    onnx.save(m, model)
    sha = file_sha256(model)
    toml = _inventory(tmp_path / "devices.toml", sshd, adb_server, own_phone,
                      tmp_path / "board-work")
    proc = _farm([model, "--inventory", toml, "--devices", "host,board,pixel", "--db",
                  str(tmp_path / "r.sqlite"), "--runs", "5", "--warmup", "1", "--cooldown", "60",
                  "--progress", "none"], str(tmp_path / "cache"))
    try:
        end = time.monotonic() + 90
        while len(_bench_pids(sha)) < 3 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.2)
        assert len(_bench_pids(sha)) == 3, proc.stderr.read() if proc.poll() is not None else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    t0 = time.monotonic()
    while pids_matching(sha) and time.monotonic() - t0 < 15:
        time.sleep(0.2)
    left = pids_matching(sha)
    for pid in left:          # do not leave them to the next test, whatever happened
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert left == [] and time.monotonic() - t0 < 10


def test_farm_devices_does_not_disturb_a_busy_device():
    """`farm devices` probes nothing on a device another process benchmarks on; it says
    who holds it."""
    from device_farm.farm import probe_devices
    from device_farm.inventory import host_device
    from device_farm.locks import device_key, open_locks

    spec = host_device()
    lease = open_locks().try_acquire(device_key(spec), {"pid": 4242, "host": "lab",
                                                        "run_id": "r9", "device": "host",
                                                        "since": "then"})
    assert lease is not None
    try:
        row = probe_devices([spec], engines=False)[0]
    finally:
        lease.release()
    assert row["online"] is None and "info" not in row
    assert row["error"] == "busy: held by pid 4242 on lab (run r9, device host, since then)"
    assert probe_devices([spec], engines=False)[0]["online"] is True
