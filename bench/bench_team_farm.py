"""The team farm measured against the one-machine farm, in the same run.

1. Queue overhead per job. (a) Dispatch: a job submitted to an idle device, from
   the moment ``submit`` returns (the queue job committed) to the job's start on
   the device (its row's ``started_at``), p50/p95 over 20 submissions; and what
   ``submit`` itself took (hashing, planning, storing, queuing). (b) Back to back:
   one run of 25 jobs on one device, the gap between a job's end and the next
   one's start, p50/p95, through the queue (an agent) and through the in-process
   scheduler (``farm bench``): the baseline. Goal: dispatch p50 < 0.2 s.
2. Throughput: 200 queued jobs over 8 simulated phones (ADB simulator behind the
   real adb server) held by 2 agents (4 each); wall time from the submission to
   the last job's end, against the ideal: the busiest device's total job time
   (the sum of its jobs' durations, measured in the same run). Goal: within 10 %.
   The same 200 jobs through the in-process scheduler (one ``farm bench``) first:
   the baseline, on the same 2 shared cores that also play the 8 phones.
3. The dashboard with 10,000 results (50 runs x 8 devices x 25 files, seeded
   latencies), on SQLite and on PostgreSQL (the same store copied with
   ``copy-store``, timed): each page's load time, median of 10 requests after one
   warm-up; a model's history also on its first view, when its run-to-run
   comparisons (a bootstrap each) are computed behind the page, and how long they
   take. Goal: < 300 ms.

A throwaway PostgreSQL server is started (Debian's binaries). Figures are noisy:
the machine is shared. Run: python bench/bench_team_farm.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from device_farm.store import ResultStore  # noqa: E402
from device_farm.testing.postgres import PostgresServer, wait_until  # noqa: E402
from device_farm.testing.sshd import free_port, wait_port  # noqa: E402
from bench_farm import make_models  # noqa: E402  (this script's folder is on sys.path)


def _env(cache: str):
    return dict(os.environ, PYTHONPATH=ROOT, EDGERT_CACHE_DIR=cache, EDGERT_FARM_STALE_S="10")


def start_agent(url, inventory, devices, name, cache, log_dir):
    log = open(os.path.join(log_dir, f"agent-{name}.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "edgert", "farm", "agent", "--store", url,
                             "--inventory", inventory, "--devices", ",".join(devices),
                             "--name", name, "--no-engines"], env=_env(cache), stdout=log,
                            stderr=subprocess.STDOUT)

    def online():
        assert proc.poll() is None, open(log.name).read()
        with ResultStore(url) as store:
            rows = {r["name"]: r for r in store.device_states()}
        return all(rows.get(d, {}).get("agent_id") == name and rows[d]["online"]
                   for d in devices)
    wait_until(online, 120, f"agent {name}", every=0.2)
    return proc


def stop(proc):
    proc.terminate()
    proc.wait(60)


def _epoch(stamp: str) -> float:
    from datetime import timezone

    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def pct(values, q):
    return float(np.percentile(values, q))


def gaps(rows):
    rows = sorted(rows, key=lambda r: _epoch(r["started_at"]))
    return [_epoch(b["started_at"]) - _epoch(a["finished_at"]) for a, b in zip(rows, rows[1:])]


def wait_rows(url, run_id, n, timeout=600):
    def done():
        with ResultStore(url) as store:
            rows = store.results(run_id)
        return rows if len(rows) >= n else None
    return wait_until(done, timeout, f"{n} rows of {run_id}", every=0.02)


def queue_overhead(pg, tmp, models):
    from device_farm import farm
    from device_farm.inventory import Inventory, host_device
    from device_farm.team.submit import submit

    url = pg.create_database("overhead")
    inv = os.path.join(tmp, "host.toml")
    with open(inv, "w") as f:
        f.write(f'[[device]]\nname = "host"\ntransport = "local"\npython = "{sys.executable}"\n')
    cache = os.path.join(tmp, "cache-overhead")
    os.environ["EDGERT_CACHE_DIR"] = cache
    agent = start_agent(url, inv, ["host"], "bench", cache, tmp)
    try:
        dispatch, submit_s = [], []
        for i in range(21):
            t0 = time.time()
            run = submit(url, [models[i % 3]], devices=["host"], runs=1, warmup=0)
            t1 = time.time()
            row, = wait_rows(url, run, 1)
            if i:     # the first fetches the model into the agent's cache
                dispatch.append(_epoch(row["started_at"]) - t1)
                submit_s.append(t1 - t0)
        run = submit(url, models, devices=["host"], runs=1, warmup=0)
        queued = gaps(wait_rows(url, run, len(models)))
    finally:
        stop(agent)
    db = os.path.join(tmp, "inproc.sqlite")
    s = farm.bench(models, inventory=Inventory([host_device()]), devices=["host"], db=db,
                   runs=1, warmup=0)
    with ResultStore(db) as store:
        inproc = gaps(store.results(s.run_id))
    print("1. queue overhead per job (local device, runs=1)")
    print(f"   dispatch, submit returned -> job started: p50 {pct(dispatch, 50):.3f} s, "
          f"p95 {pct(dispatch, 95):.3f} s (goal p50 < 0.2 s); submit itself p50 "
          f"{pct(submit_s, 50):.3f} s")
    print(f"   back to back, end -> next start: queue p50 {pct(queued, 50):.3f} s, p95 "
          f"{pct(queued, 95):.3f} s; in-process scheduler p50 {pct(inproc, 50):.3f} s, p95 "
          f"{pct(inproc, 95):.3f} s; queue - in-process p50 "
          f"{pct(queued, 50) - pct(inproc, 50):+.3f} s")


def throughput(pg, tmp, models):
    from device_farm import farm
    from device_farm.inventory import load_inventory
    from device_farm.team.submit import submit
    from device_farm.testing.adb_server import AdbServer, SimulatedPhone

    url = pg.create_database("throughput")
    cache = os.path.join(tmp, "cache-tp")
    names = [f"p{i}" for i in range(8)]
    with AdbServer(os.path.join(tmp, "adbhome")) as adb:
        phones = []
        try:
            for i in range(8):
                p = SimulatedPhone(os.path.join(tmp, f"phone{i}"), serial=f"SIM{i:04d}").start()
                adb.connect(p.address)
                phones.append(p)
            inv = os.path.join(tmp, "phones.toml")
            with open(inv, "w") as f:
                for i, p in enumerate(phones):
                    f.write(f'[[device]]\nname = "p{i}"\ntransport = "adb"\nserial = '
                            f'"{p.address}"\nadb_server = "{adb.address}"\npython = '
                            f'"{sys.executable}"\n\n')
            # the baseline: the same 200 jobs on the same phones, one process (in-process
            # scheduler); it also warms the phones' caches for both
            os.environ["EDGERT_CACHE_DIR"] = cache + "-inproc"
            t0 = time.time()
            s = farm.bench(models, inventory=load_inventory(inv), devices=names,
                           db=os.path.join(tmp, "tp.sqlite"), runs=3, warmup=0, cooldown_s=0.3)
            with ResultStore(os.path.join(tmp, "tp.sqlite")) as store:
                base_rows = store.results(s.run_id)
            base = _wall_ideal(base_rows, t0)
            agents = [start_agent(url, inv, names[:4], "X", cache + "-x", tmp),
                      start_agent(url, inv, names[4:], "Y", cache + "-y", tmp)]
            try:
                t0 = time.time()
                run = submit(url, models, devices=names, runs=3, warmup=0, cooldown_s=0.3)
                rows = wait_rows(url, run, 200, timeout=1200)
            finally:
                for a in agents:
                    stop(a)
        finally:
            for p in phones:
                p.stop()
    assert len(rows) == 200 and all(r["status"] == "ok" for r in rows), \
        [r["error"] for r in rows if r["status"] != "ok"][:3]
    queue = _wall_ideal(rows, t0)
    print("2. 200 jobs (25 files x 8 simulated phones), runs=3, 0.3 s cool-down")
    for name, (wall, ideal), rs in (("queue, 2 agents", queue, rows),
                                    ("in-process scheduler", base, base_rows)):
        g = [x for d in names for x in gaps([r for r in rs if r["device"] == d])]
        print(f"   {name}: wall {wall:.1f} s, ideal (busiest device's job time) "
              f"{ideal:.1f} s: wall/ideal {wall / ideal:.3f} (goal <= 1.10); between a "
              f"device's jobs p50 {pct(g, 50):.3f} s, p95 {pct(g, 95):.3f} s")


def _wall_ideal(rows, t0):
    """(wall from t0 to the last job's end, the busiest device's total job time)."""
    per_device = {}
    for r in rows:
        per_device.setdefault(r["device"], []).append(_epoch(r["finished_at"])
                                                      - _epoch(r["started_at"]))
    return (max(_epoch(r["finished_at"]) for r in rows) - t0,
            max(sum(v) for v in per_device.values()))


def dashboard(pg, tmp, models):
    from device_farm.store.copy import copy_store
    from device_farm.testing.synthetic import fill_store

    db = os.path.join(tmp, "dash.sqlite")
    t0 = time.time()
    fill_store(db, models, runs=50, devices=8, latencies=50)
    fill_s = time.time() - t0
    url = pg.create_database("dash")
    t0 = time.time()
    copy_store(db, url)
    copy_s = time.time() - t0
    with ResultStore(db) as store:
        n = len(store.results(latest=False))
    print(f"3. dashboard, {n} results (filled in {fill_s:.1f} s; copy-store into "
          f"PostgreSQL {copy_s:.1f} s)")
    pages = ["/", "/devices", "/models", "/runs/run-0049", "/models/m00",
             "/runs/run-0049/results.csv", "/results/5000"]
    for name, store in (("SQLite", db), ("PostgreSQL", url)):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "edgert", "farm", "serve", "--store",
                                 store, "--port", str(port)], env=_env(os.path.join(tmp, "c")))
        try:
            wait_port(port, 60)
            t_start = time.monotonic()
            cold = _get(port, "/models/m01")     # before the background warm-up reached it
            while b'id="pending"' in _body(port, "/models/m01"):
                time.sleep(0.2)
            m01_done = time.monotonic() - t_start
            line = []
            for page in pages:
                _get(port, page)
                times = [_get(port, page) for _ in range(10)]
                line.append(f"{page} {statistics.median(times) * 1000:.0f}")
            while b'id="pending"' in _body(port, "/models/m24") and \
                    time.monotonic() - t_start < 300:
                time.sleep(0.5)                  # the last model the warm-up computes
            warmed = time.monotonic() - t_start
            print(f"   {name}: median ms: " + ", ".join(line) + " (goal < 300 ms)")
            print(f"   {name}: a model's history on its first view {cold * 1000:.0f} ms "
                  f"(comparisons pending, computed behind the page: complete after "
                  f"{m01_done:.1f} s); every model's history compared {warmed:.0f} s after "
                  "start")
        finally:
            proc.terminate()
            proc.wait(30)


def _body(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return r.read()


def _get(port: int, path: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        r.read()
    return time.perf_counter() - t0


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="team farm figures")
    ap.add_argument("--parts", default="overhead,throughput,dashboard")
    parts = ap.parse_args().parts.split(",")
    tmp = tempfile.mkdtemp(prefix="edgert-bench-team-")
    models = make_models(tmp, 25, seed=200)
    with PostgresServer() as pg:
        for name, fn in (("overhead", queue_overhead), ("throughput", throughput),
                         ("dashboard", dashboard)):
            if name in parts:
                fn(pg, tmp, models)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
