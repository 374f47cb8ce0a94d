"""Faults during farm runs: a clear error on the job, nothing lost from the store,
the other devices unaffected."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from device_farm import farm
from edgert.files import file_sha256
from device_farm.store import ResultStore
from device_farm.testing.sshd import LinkProxy
from tests.farm.helpers import board_spec, inventory, phone_spec, pids_matching

pytestmark = [pytest.mark.needs_sshd, pytest.mark.needs_adb]


def _rows(db, run_id):
    with ResultStore(db) as store:
        return store.results(run_id), store.planned_jobs(run_id)


def test_devices_drop_mid_run(tmp_path, models, sshd, adb_server, own_phone):
    """The phone is unplugged and the board's link is cut while each runs its first job;
    both are marked dropped, their jobs reported; the direct board and host finish."""
    proxy = LinkProxy(sshd.port)
    inv = inventory(phone_spec(own_phone, adb_server, "pixel"),
                    board_spec(sshd, "flaky", port=proxy.port), board_spec(sshd, "steady"))
    faults = {"pixel": own_phone.kill, "flaky": proxy.cut}

    def on_event(ev):
        if ev["kind"] == "job_start" and ev["device"] in faults:
            threading.Timer(1.0, faults.pop(ev["device"])).start()

    db = str(tmp_path / "r.sqlite")
    s = farm.bench([models["onnx"], models["mnn"]], inventory=inv,
                   devices=["pixel", "flaky", "steady", "host"], db=db, runs=10, warmup=1,
                   cooldown_s=2.5, retries=1, on_event=on_event)
    rows, plan = _rows(db, s.run_id)
    assert len(plan) == 8 and len(rows) == 8  # every planned job has its row
    assert (s.planned, s.ok, s.failed, s.not_run, s.complete) == (8, 4, 2, 2, False)
    by = {(r["device"], r["format"]): r for r in rows}
    for dev in ("steady", "host"):
        assert by[(dev, "onnx")]["status"] == by[(dev, "mnn")]["status"] == "ok"
    assert set(s.dropped) == {"pixel", "flaky"}
    for dev in ("pixel", "flaky"):
        first, second = by[(dev, "onnx")], by[(dev, "mnn")]
        assert first["status"] == "error" and first["attempts"] == 2, (dev, first["error"])
        assert ("dropped" in first["error"] or "not reachable" in first["error"]
                or "cannot" in first["error"]), first["error"]
        assert second["status"] == "not_run" and second["attempts"] == 0
        assert second["error"].startswith(f"not run: device {dev} stopped answering")
    with ResultStore(db) as store:
        status = {d["device"]: d["status"] for d in store.devices(s.run_id)}
        assert store.run(s.run_id)["status"] == "done-with-errors"
    assert status == {"pixel": "dropped", "flaky": "dropped", "steady": "online",
                      "host": "online"}


def test_job_timeout_kills_the_benchmark_on_device(tmp_path, models, sshd, adb_server, phone):
    inv = inventory(board_spec(sshd, "board"), phone_spec(phone, adb_server, "pixel"))
    db = str(tmp_path / "r.sqlite")
    sha = file_sha256(models["onnx"])
    t0 = time.monotonic()
    s = farm.bench([models["onnx"]], inventory=inv, devices=["board", "pixel", "host"], db=db,
                   runs=5, warmup=1, cooldown_s=30, timeout_s=2)
    assert time.monotonic() - t0 < 25
    rows, _ = _rows(db, s.run_id)
    assert len(rows) == 3 and s.dropped == {}  # the devices answer: not dropped
    for r in rows:
        assert r["status"] == "error"
        assert "ran past its 2 s timeout and was stopped on the device" in r["error"]
        assert r["attempts"] == 1  # a timeout is not retried
    time.sleep(0.5)
    assert pids_matching(sha) == []  # no benchmark of that model is left running anywhere


def test_push_fails_half_way(tmp_path, models, adb_server, own_phone):
    sha = file_sha256(models["onnx"])
    faults = os.path.join(own_phone.root, "faults.json")
    inv = inventory(phone_spec(own_phone, adb_server, "pixel"))
    db = str(tmp_path / "r.sqlite")
    # once: the retry pushes again and the job succeeds
    with open(faults, "w") as f:
        json.dump({"push_fail_after_bytes": 512, "push_fail_count": 1,
                   "push_fail_match": sha[:16]}, f)
    s = farm.bench([models["onnx"]], inventory=inv, devices=["pixel"], db=db, runs=5, warmup=1,
                   retries=2)
    rows, _ = _rows(db, s.run_id)
    assert [(r["status"], r["attempts"]) for r in rows] == [("ok", 2)], rows[0]["error"]
    assert any("fault: push" in line and sha[:16] in line for line in own_phone.log())
    cached = os.path.join(own_phone.root, "data_local_tmp", "edgert", "cache", sha)
    assert os.listdir(cached) == ["tiny.onnx"]  # the partial .part file was replaced
    assert open(os.path.join(cached, "tiny.onnx"), "rb").read() == open(models["onnx"],
                                                                         "rb").read()
    # every time: the job fails with the push error; the next job on the phone still runs
    sha2 = file_sha256(models["hostile"])
    with open(faults, "w") as f:
        json.dump({"push_fail_after_bytes": 512, "push_fail_count": 99,
                   "push_fail_match": sha2[:16]}, f)
    s = farm.bench([models["hostile"], models["mnn"]], inventory=inv, devices=["pixel", "host"],
                   db=db, runs=5, warmup=1, retries=1)
    rows, _ = _rows(db, s.run_id)
    by = {(r["device"], r["format"]): r for r in rows}
    bad = by[("pixel", "onnx")]
    assert bad["status"] == "error" and bad["attempts"] == 2
    assert "push" in bad["error"] and "failed" in bad["error"]
    assert by[("pixel", "mnn")]["status"] == "ok" and s.dropped == {}
    assert by[("host", "onnx")]["status"] == by[("host", "mnn")]["status"] == "ok"
    assert not os.path.exists(os.path.join(own_phone.root, "data_local_tmp", "edgert", "cache",
                                           sha2, os.path.basename(models["hostile"])))


def test_changed_host_key_refuses_that_board_only(tmp_path, models, sshd):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = sshd.write_known_hosts(str(tmp_path / "kh"), key_file=str(other))
    inv = inventory(board_spec(sshd, "impostor", known_hosts=known))
    db = str(tmp_path / "r.sqlite")
    s = farm.bench([models["onnx"]], inventory=inv, devices=["impostor", "host"], db=db, runs=5,
                   warmup=1)
    rows, _ = _rows(db, s.run_id)
    by = {r["device"]: r for r in rows}
    assert by["host"]["status"] == "ok"
    assert by["impostor"]["status"] == "not_run"
    assert "host key changed" in by["impostor"]["error"]
    assert by["impostor"]["attempts"] == 0
    assert (s.ok, s.failed, s.not_run) == (1, 0, 1) and "impostor" in s.unavailable


def test_killed_run_resumes_without_redoing_jobs(tmp_path, models):
    db = str(tmp_path / "r.sqlite")
    cmd = [sys.executable, "-m", "edgert", "farm", "bench", models["onnx"], models["mnn"],
           models["hostile"], "--devices", "host", "--db", db, "--run-id", "killed",
           "--runs", "5", "--warmup", "1", "--cooldown", "1.5", "--progress", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    first_id = None
    end = time.monotonic() + 60
    while time.monotonic() < end and first_id is None:
        time.sleep(0.2)
        if os.path.exists(db):
            try:
                with sqlite3.connect(db) as c:
                    got = c.execute("SELECT id, job_key FROM results WHERE status='ok'").fetchall()
            except sqlite3.OperationalError:
                continue
            if got:
                first_id, first_key = got[0]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first_id is not None, proc.stderr.read().decode()
    with ResultStore(db) as store:
        done_before = store.finished_keys("killed")
        assert 1 <= len(done_before) < 3 and store.run("killed")["status"] == "running"
    out = subprocess.run([sys.executable, "-m", "edgert", "farm", "bench", "--resume", "--db", db,
                          "--progress", "none", "--json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["run_id"] == "killed"
    assert summary["skipped"] == len(done_before)
    assert summary["ok"] == 3 - len(done_before) and summary["planned"] == 3
    with ResultStore(db) as store:
        rows = store.results("killed", latest=False)
        assert store.finished_keys("killed") == {j["key"] for j in store.planned_jobs("killed")}
        assert store.run("killed")["status"] == "done"
    ok_rows = [r for r in rows if r["status"] == "ok"]
    assert len(ok_rows) == 3  # nothing ran twice
    assert [r["id"] for r in ok_rows if r["job_key"] == first_key] == [first_id]


def test_a_device_whose_setup_raises_loses_no_job(tmp_path, models, sshd):
    """Whatever a device's setup raises (here a ZeroDivisionError and a KeyError from a
    registered transport), each of its jobs gets a row, the other devices finish, and
    the summary and exit status say the run is incomplete."""
    from device_farm.inventory import DeviceSpec
    from tests.farm import broken_transport  # noqa: F401 - registers transport "broken"

    inv = inventory(board_spec(sshd, "board"),
                    DeviceSpec(name="broken-init", transport="broken", workdir="/x"),
                    DeviceSpec(name="broken-probe", transport="broken", workdir="/x"))
    db = str(tmp_path / "r.sqlite")
    s = farm.bench([models["onnx"], models["mnn"]], inventory=inv,
                   devices=["broken-init", "board", "broken-probe", "host"], db=db, runs=5,
                   warmup=1, retries=0)
    assert (s.planned, s.ok, s.failed, s.not_run, s.complete) == (8, 4, 0, 4, False)
    rows, plan = _rows(db, s.run_id)
    assert sorted(r["job_key"] for r in rows) == sorted(j["key"] for j in plan)
    by = {(r["device"], r["format"]): r for r in rows}
    for fmt in ("onnx", "mnn"):
        assert by[("board", fmt)]["status"] == by[("host", fmt)]["status"] == "ok"
        assert by[("broken-init", fmt)]["status"] == "not_run"
        assert by[("broken-init", fmt)]["error"] == (
            "not run: device setup failed: internal error: ZeroDivisionError: the transport "
            "could not even be built")
        assert by[("broken-probe", fmt)]["status"] == "not_run"
        assert "KeyError: 'a surprise in the middle of the probe'" in \
            by[("broken-probe", fmt)]["error"]
    assert set(s.unavailable) == {"broken-init", "broken-probe"}
    with ResultStore(db) as store:
        run = store.run(s.run_id)
    assert run["status"] == "done-with-errors"
    assert json.loads(run["summary_json"])["not_run"] == 4


def test_cli_exit_status_says_jobs_were_not_run(tmp_path, models):
    toml = tmp_path / "devices.toml"
    toml.write_text('[[device]]\nname = "broken-probe"\ntransport = "broken"\n'
                    'workdir = "/nowhere"\n')
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = ("import sys, tests.farm.broken_transport; from edgert.cli import main; "
              "sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", script, "farm", "bench", models["onnx"],
                          "--inventory", str(toml), "--devices", "broken-probe,host",
                          "--db", str(tmp_path / "r.sqlite"), "--runs", "5", "--warmup", "1",
                          "--progress", "none", "--retries", "0"], capture_output=True,
                         text=True, timeout=180, cwd=root,
                         env=dict(os.environ, PYTHONPATH=root))
    assert out.returncode == 1, out.stderr
    assert "2 planned: 1 ok, 0 failed, 1 not run" in out.stdout
    assert "device broken-probe unavailable: device setup failed: internal error: KeyError" \
        in out.stdout
    assert "Traceback" not in out.stderr


def test_a_revoked_host_key_in_a_run(tmp_path, models, sshd):
    """A known_hosts with marker lines (paramiko alone raised on them, ending the device's
    thread): the revoked board's jobs are not run, with the reason; the CA-listing board
    and the host run."""
    with open(sshd.host_key + ".pub") as f:
        key = " ".join(f.read().split()[:2])
    line = f"[127.0.0.1]:{sshd.port} {key}\n"
    ca_file, revoked_file = tmp_path / "kh_ca", tmp_path / "kh_rev"
    ca_file.write_text(f"@cert-authority *.lab {key}\n{line}")
    revoked_file.write_text(f"@revoked * {key}\n{line}")
    inv = inventory(board_spec(sshd, "ca", known_hosts=str(ca_file)),
                    board_spec(sshd, "revoked", known_hosts=str(revoked_file)))
    db = str(tmp_path / "r.sqlite")
    s = farm.bench([models["onnx"]], inventory=inv, devices=["ca", "revoked", "host"], db=db,
                   runs=5, warmup=1)
    rows, _ = _rows(db, s.run_id)
    by = {r["device"]: r for r in rows}
    assert by["ca"]["status"] == by["host"]["status"] == "ok"
    assert by["revoked"]["status"] == "not_run"
    assert "marked @revoked" in by["revoked"]["error"]
    assert (s.planned, s.ok, s.not_run) == (3, 2, 1)
