"""The results store across schema versions: a store written by the farm before
issue 15 (schema 1, tests/farm/data/store_v1.sqlite) migrates on open and every old
row still reads, reports and traces."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from device_farm.jobs import Job
from device_farm.store import SCHEMA_VERSION, ResultStore
from device_farm.variants import variant_of_row
from edgert.errors import EdgertError
from edgert.files import file_sha256

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture
def v1_store(tmp_path):
    path = str(tmp_path / "old.sqlite")
    shutil.copyfile(os.path.join(DATA, "store_v1.sqlite"), path)
    with sqlite3.connect(path) as db:   # as the old code left it
        assert db.execute("SELECT value FROM meta").fetchone() == ("1",)
        cols = [r[1] for r in db.execute("PRAGMA table_info(results)")]
        assert "variant_json" not in cols
        # its model lived in a temporary folder: make sure it is gone here too
        db.execute("UPDATE results SET model_path=?", (str(tmp_path / "gone" / "v1net.onnx"),))
    return path


def test_old_rows_read_after_migration(v1_store):
    with ResultStore(v1_store) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        rows = {r["device"]: r for r in store.results("v1-run")}
        plan = store.planned_jobs("v1-run")
    assert {d: r["status"] for d, r in rows.items()} == {"host": "ok", "ghost": "error"}
    ok = rows["host"]
    assert ok["variant_json"] is None and ok["median_ms"] > 0
    assert len(json.loads(ok["latencies_json"])) == ok["runs"] == 12
    v = variant_of_row(ok)      # the file is gone: a legacy variant, and it says so
    assert (v.model, v.label(), v.precision_source) == ("v1net", "onnx precision unknown",
                                                        "legacy")
    job = Job.from_dict(plan[0])   # a plan of schema 1 has no variant: still a job
    assert job.model.variant is None and job.label.startswith("v1net.onnx [onnx ")


def test_an_old_row_whose_file_is_still_there_is_read_again(v1_store):
    model = os.path.join(DATA, "store_v1_v1net.onnx")
    with sqlite3.connect(v1_store) as db:
        sha = db.execute("SELECT model_sha256 FROM results WHERE device='host'").fetchone()[0]
        db.execute("UPDATE results SET model_path=? WHERE device='host'", (model,))
    assert file_sha256(model) == sha
    with ResultStore(v1_store) as store:
        row = [r for r in store.results("v1-run") if r["device"] == "host"][0]
    v = variant_of_row(row)
    assert (v.label(), v.precision_source) == ("onnx fp32", "file")


def test_a_migrated_store_reports_and_takes_new_runs(v1_store, tmp_path, models):
    from device_farm import farm
    from device_farm.inventory import Inventory, host_device
    from device_farm.report import write_report

    res = write_report(v1_store, str(tmp_path / "old"), "v1-run")
    cells = json.load(open(res["json"]))["cells"]
    assert (res["ok"], res["failed"], res["not_run"]) == (1, 1, 0)
    with ResultStore(v1_store) as store:
        ok = [r for r in store.results("v1-run") if r["status"] == "ok"][0]
    assert [c["value_ms"] for c in cells if c["status"] == "ok"] == [ok["median_ms"]]
    assert "device unavailable" in open(res["markdown"]).read()
    s = farm.bench([models["onnx"]], inventory=Inventory([host_device()]), devices=["host"],
                   db=v1_store, runs=5, warmup=1)
    with ResultStore(v1_store) as store:
        assert [r["run_id"] for r in store.runs()] == ["v1-run", s.run_id]
        new = store.results(s.run_id)[0]
        assert json.loads(store.run(s.run_id)["summary_json"])["ok"] == 1
    assert new["variant"] == "onnx fp32" and new["model_group"] == "tiny"
    assert json.loads(new["variant_json"])["precision_source"] == "file"


def test_two_processes_open_an_old_store_at_once(v1_store):
    script = ("import sys; from device_farm.store import ResultStore; "
              "s = ResultStore(sys.argv[1]); print(s.schema_version); s.close()")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    procs = [subprocess.Popen([sys.executable, "-c", script, v1_store], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert [o[0].strip() for o in outs] == ["3", "3", "3"]
    with sqlite3.connect(v1_store) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(results)")]
    assert cols.count("variant_json") == 1


def test_stores_it_cannot_read(tmp_path):
    newer = str(tmp_path / "newer.sqlite")
    with ResultStore(newer):
        pass
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value='9' WHERE key='schema_version'")
    with pytest.raises(EdgertError, match="schema version 9, newer than this edgert's 3"):
        ResultStore(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(EdgertError, match="not a farm results database"):
        ResultStore(str(junk))


def _comparable(rows):
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


def test_a_v1_store_copied_into_postgres(v1_store, pg_store, tmp_path):
    """`edgert farm copy-store` brings a laptop's store (here one of schema 1) into the
    team's PostgreSQL: every row as it reads from the file, and a second copy copies
    nothing twice."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    cmd = [sys.executable, "-m", "edgert", "farm", "copy-store", v1_store, pg_store, "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"copied": ["v1-run"], "skipped": [], "results": 2}
    again = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                      timeout=120).stdout)
    assert again == {"copied": [], "skipped": ["v1-run"], "results": 0}
    with ResultStore(v1_store) as a, ResultStore(pg_store) as b:
        assert b.schema_version == SCHEMA_VERSION
        assert _comparable(a.results("v1-run", latest=False)) == \
            _comparable(b.results("v1-run", latest=False))
        assert a.planned_jobs("v1-run") == b.planned_jobs("v1-run")
        assert a.run("v1-run") == b.run("v1-run")
        assert a.devices("v1-run") == b.devices("v1-run")
    from device_farm.report import write_report

    res = write_report(pg_store, str(tmp_path / "rep"), "v1-run", plots=False)
    assert (res["ok"], res["failed"], res["not_run"]) == (1, 1, 0)


def test_farm_bench_on_a_postgres_store(pg_store, models):
    """The one-machine path with the team's store: the same rows, the devices' locks in
    PostgreSQL (held between processes, free when the holder dies)."""
    from device_farm import farm
    from device_farm.inventory import Inventory, host_device
    from device_farm.locks import device_key, open_locks

    s = farm.bench([models["onnx"]], inventory=Inventory([host_device()]), devices=["host"],
                   db=pg_store, runs=5, warmup=1)
    assert (s.planned, s.ok) == (1, 1)
    with ResultStore(pg_store) as store:
        row, = store.results(s.run_id)
        assert store.run(s.run_id)["mode"] == "local"
    assert row["variant"] == "onnx fp32" and len(json.loads(row["latencies_json"])) == 5
    assert row["lock_wait_s"] is not None and row["lock_wait_s"] < 1.0

    locks = open_locks(pg_store)
    key = device_key(host_device())
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from device_farm.locks import open_locks; "
         "lease = open_locks(sys.argv[1]).try_acquire(sys.argv[2], {'pid': 'child'}); "
         "print('held' if lease else 'busy', flush=True); time.sleep(60)", pg_store, key],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=root))
    try:
        assert child.stdout.readline().strip() == "held"
        assert locks.try_acquire(key, {"pid": os.getpid()}) is None
        assert locks.holder(key) == {"pid": "child", "key": key}
    finally:
        child.kill()
        child.wait()
    lease = locks.acquire(key, {"pid": os.getpid()}, 5.0)   # free: the server dropped it
    assert lease.waited_s < 2.0
    lease.release()
    assert locks.holder(key) is None


def test_where_the_store_is(tmp_path, monkeypatch):
    """--store, else $EDGERT_FARM_STORE, else farm.toml's store, else the SQLite default;
    a password never printed; a bad farm.toml named."""
    from device_farm.store import location as loc

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGERT_FARM_STORE", raising=False)
    monkeypatch.delenv("EDGERT_FARM_CONFIG", raising=False)
    assert loc.resolve_store(None) == "farm_results.sqlite"
    (tmp_path / "farm.toml").write_text('store = "postgresql://farm:s3cret@db:5432/farm"\n')
    assert loc.resolve_store(None) == "postgresql://farm:s3cret@db:5432/farm"
    monkeypatch.setenv("EDGERT_FARM_STORE", "team.sqlite")
    assert loc.resolve_store(None) == "team.sqlite"
    assert loc.resolve_store("given.sqlite") == "given.sqlite"
    assert loc.display("postgresql://farm:s3cret@db:5432/farm") == \
        "postgresql://farm:***@db:5432/farm"
    (tmp_path / "farm.toml").write_text('stor = "x"\n')
    with pytest.raises(EdgertError, match="farm.toml: unknown key.s. stor; known: store"):
        loc.read_config(str(tmp_path / "farm.toml"))
    with pytest.raises(EdgertError, match="queue needs a PostgreSQL store"):
        loc.conninfo("team.sqlite")


def test_a_postgres_store_that_is_not_there(tmp_path):
    """No server at the URL: a clear error naming the store (no password), not a
    traceback, from the library and from the command line."""
    from device_farm.store import StoreUnavailable
    from device_farm.testing.sshd import free_port

    url = f"postgresql://farm:s3cret@127.0.0.1:{free_port()}/farm"
    with pytest.raises(StoreUnavailable, match=r"postgresql://farm:\*\*\*@127\.0\.0\.1:\d+/farm"
                                               r": cannot open the store: .*refused"):
        ResultStore(url)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = subprocess.run([sys.executable, "-m", "edgert", "farm", "results", "--store", url],
                         env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "cannot open the store" in res.stderr
    assert "s3cret" not in res.stderr and "Traceback" not in res.stderr


def test_a_store_another_process_holds_is_waited_for_then_named(tmp_path, monkeypatch):
    """Opening a SQLite store that another process is writing waits for it; past the wait
    the error says the database is held, where it said "not a farm results database
    (database is locked)" (two `farm bench` started at once on one file, in CI)."""
    import threading
    import time

    import device_farm.store.results as results
    from device_farm.store import StoreUnavailable

    db = str(tmp_path / "r.sqlite")
    ResultStore(db).close()
    monkeypatch.setattr(results, "OPEN_WAIT_S", 1.0)

    def hold(seconds: float, started: threading.Event) -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")          # the write lock, as a writer holds it
        started.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    for seconds, opens in ((0.4, True), (3.0, False)):
        started = threading.Event()
        holder = threading.Thread(target=hold, args=(seconds, started))
        holder.start()
        started.wait(5)
        try:
            if opens:
                ResultStore(db).close()
            else:
                with pytest.raises(StoreUnavailable, match="another process holds the "
                                                           "database for over 1 s"):
                    ResultStore(db)
        finally:
            holder.join()
