"""Farm overhead and parallelism, measured against baselines taken in the same run.

1. Overhead per job on the local device, on an SSH board (a real sshd on
   localhost) and on a simulated phone (the real adb server): the marginal wall
   time of one more job in a farm run (caches warm: models already on the device;
   from runs of 1 and of 6 jobs), minus the bare ``python -m edgert bench`` time
   of the same command run directly (for the board and the phone: importing
   edgert from the zip the farm deployed). Every job now includes what issue 15
   added: the device lock, the variant of each file (read at planning), the
   device-side guard. Goal: < 0.5 s per job.
2. The parts of that overhead issue 15 added, each timed alone: a device lock
   taken and released (no contention), the variant of a 16 MB ONNX file, ratios
   against hashing the same file (the farm hashes every file anyway).
3. Two farm processes on one device at once (the lock makes them take turns)
   against one process running both sets of jobs. The second process adds its own
   start and its device set-up (probe, engine check), which wait for the device like
   a job; the figure printed beside it is that set-up, timed alone.
4. Parallelism: N simulated phones (ADB simulator behind the real adb server),
   the same jobs on each; wall time of all N in one run against the slowest
   device run alone. Goal: within 10%. The jobs are mostly a cool-down pause, so
   this measures the scheduler, not this machine's 2 shared cores.

Figures are noisy: the machine is shared. Run: python bench/bench_farm.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from device_farm import farm  # noqa: E402
from device_farm.inventory import DeviceSpec, Inventory, host_device  # noqa: E402

RUNS, WARMUP = 20, 2


def make_models(folder: str, n: int, seed: int = 100):
    """``n`` small distinct MatMul models (m00.onnx, ...), weights seeded from ``seed``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    paths = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
        g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "m",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
                              [w])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        p = os.path.join(folder, f"m{i:02d}.onnx")
        onnx.save(m, p)
        paths.append(p)
    return paths


def bare_once(model: str, pythonpath: str) -> float:
    """Wall time of the device runner run directly (no farm)."""
    env = dict(os.environ, PYTHONPATH=pythonpath)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgert", "bench", model, "--json", "--latencies",
                    "--runs", str(RUNS), "--warmup", str(WARMUP)], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def farm_once(models, inv, device, db) -> float:
    t0 = time.perf_counter()
    s = farm.bench(models, inventory=inv, devices=[device], db=db, runs=RUNS, warmup=WARMUP)
    assert s.failed == 0, f"{device}: {s}"
    return time.perf_counter() - t0


def overhead(name, inv, device, models, db, pythonpath, repeats: int = 5):
    """Interleaved repeats (bare, 1-job run, N-job run); the minimum of each is the
    least disturbed by other work on the machine; medians are printed too."""
    farm_once(models, inv, device, db)  # warm: models and edgert on the device
    bare, w1, wn = [], [], []
    for _ in range(repeats):
        bare.append(bare_once(models[0], pythonpath))
        w1.append(farm_once(models[:1], inv, device, db))
        wn.append(farm_once(models, inv, device, db))
    n = len(models) - 1
    per_job, per_job_med = (min(wn) - min(w1)) / n, (statistics.median(wn)
                                                      - statistics.median(w1)) / n
    b, b_med = min(bare), statistics.median(bare)
    print(f"{name}: bare edgert bench {b:.3f} s/job (median {b_med:.3f}); farm "
          f"{per_job:.3f} s/job (median {per_job_med:.3f}; runs of 1 and {len(models)} jobs: "
          f"{min(w1):.2f} s, {min(wn):.2f} s); overhead {per_job - b:+.3f} s/job "
          f"(median {per_job_med - b_med:+.3f}; goal < 0.5); farm/bare {per_job / b:.2f}")
    return per_job - b


def added_costs(tmp) -> None:
    """The lock and the variant of a file, against hashing the same file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from device_farm.locks import FileLocks
    from device_farm.variants import describe_file
    from edgert.files import file_sha256

    locks = FileLocks(os.path.join(tmp, "bench-locks"))
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        locks.acquire("local:bench", {"pid": os.getpid()}, 1.0).release()
    lock_us = (time.perf_counter() - t0) / n * 1e6
    w = numpy_helper.from_array(np.ones((4096, 1024), np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "big",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1024])], [w])
    path = os.path.join(tmp, "big.onnx")
    onnx.save(helper.make_model(g), path)
    size = os.path.getsize(path)
    variant = min(_timed(lambda: describe_file(path, "onnx", size)) for _ in range(5))
    sha = min(_timed(lambda: file_sha256(path)) for _ in range(5))
    print(f"added per job: device lock acquire+release {lock_us:.0f} us; per file at "
          f"planning: variant of a {size / 1e6:.0f} MB ONNX {variant * 1e3:.1f} ms vs its "
          f"sha256 {sha * 1e3:.1f} ms (ratio {variant / sha:.2f})")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def two_processes(tmp, models, cooldown: float = 1.0) -> float:
    """Two `farm bench` processes on the host at once vs one process with both sets."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    db = os.path.join(tmp, "two.sqlite")
    base = [sys.executable, "-m", "edgert", "farm", "bench", "--devices", "host", "--db", db,
            "--runs", str(RUNS), "--warmup", str(WARMUP), "--cooldown", str(cooldown),
            "--progress", "none"]
    half = len(models) // 2
    t0 = time.perf_counter()
    subprocess.run(base + models, env=env, check=True, capture_output=True)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    procs = [subprocess.Popen(base + part, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
             for part in (models[:half], models[half:])]
    assert [p.wait() for p in procs] == [0, 0]
    two = time.perf_counter() - t0
    t0 = time.perf_counter()
    farm.probe_devices([host_device()])
    setup = time.perf_counter() - t0
    print(f"two processes on one device: {len(models)} jobs split over 2 processes at once "
          f"{two:.2f} s; one process with all of them {one:.2f} s; ratio {two / one:.3f}: "
          f"+{two - one:.2f} s, against one device set-up (probe + engine check) of "
          f"{setup:.2f} s")
    return two / one


def parallel(tmp, models, n_phones: int = 4, cooldown: float = 3.0):
    from device_farm.testing.adb_server import AdbServer, SimulatedPhone

    phones = [SimulatedPhone(os.path.join(tmp, f"phone{i}"), serial=f"SIM{i:04d}").start()
              for i in range(n_phones)]
    try:
        with AdbServer(os.path.join(tmp, "adbhome")) as server:
            specs = []
            for i, p in enumerate(phones):
                server.connect(p.address)
                specs.append(DeviceSpec(name=f"phone{i}", transport="adb", serial=p.address,
                                        adb_server=server.address))
            inv = Inventory(specs, "bench")
            db = os.path.join(tmp, "par.sqlite")
            kw = dict(inventory=inv, db=db, runs=5, warmup=1, cooldown_s=cooldown)
            farm.bench(models, devices=[s.name for s in specs], **kw)  # warm caches
            singles = []
            for s in specs:
                t0 = time.perf_counter()
                farm.bench(models, devices=[s.name], **kw)
                singles.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = farm.bench(models, devices=[s.name for s in specs], **kw)
            wall = time.perf_counter() - t0
            assert res.failed == 0, res
    finally:
        for p in phones:
            p.stop()
    slowest = max(singles)
    print(f"parallel: {n_phones} simulated phones x {len(models)} jobs "
          f"(cool-down {cooldown:g} s each): all at once {wall:.2f} s; slowest alone "
          f"{slowest:.2f} s (singles {', '.join(f'{t:.2f}' for t in singles)}); "
          f"ratio {wall / slowest:.3f} (goal <= 1.10)")
    return wall / slowest


def phone_overhead(tmp, models, db) -> None:
    from device_farm.deploy import edgert_zip
    from device_farm.testing.adb_server import AdbServer, SimulatedPhone
    from edgert.files import file_sha256

    phone = SimulatedPhone(os.path.join(tmp, "ovphone"), serial="OVER0001").start()
    try:
        with AdbServer(os.path.join(tmp, "ovadb")) as server:
            server.connect(phone.address)
            spec = DeviceSpec(name="phone", transport="adb", serial=phone.address,
                              adb_server=server.address, python=sys.executable)
            zip_on_phone = os.path.join(phone.root, "data_local_tmp", "edgert", "cache",
                                        file_sha256(edgert_zip()), "edgert.zip")
            overhead("simulated phone", Inventory([spec], "bench"), "phone", models, db,
                     zip_on_phone)
    finally:
        phone.stop()


def main() -> int:
    from device_farm.testing.sshd import SSHServer, available
    from device_farm.transports.ssh import close_pool

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGERT_CACHE_DIR"] = os.path.join(tmp, "cache")
        models = make_models(tmp, 6)
        db = os.path.join(tmp, "bench.sqlite")
        import edgert

        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(edgert.__file__)))
        overhead("local device", Inventory([host_device()], "bench"), "host", models, db,
                 pkg_root)
        if available() is None:
            with SSHServer(os.path.join(tmp, "sshd")) as sshd:
                work = os.path.join(tmp, "board")
                board = DeviceSpec(name="board", transport="ssh", host="127.0.0.1",
                                   port=sshd.port, user=sshd.user, key_file=sshd.user_key,
                                   known_hosts=sshd.known_hosts, python=sys.executable,
                                   workdir=work)
                from device_farm.deploy import edgert_zip
                from edgert.files import file_sha256

                zip_on_board = os.path.join(work, "cache", file_sha256(edgert_zip()),
                                            "edgert.zip")
                overhead("ssh board", Inventory([board], "bench"), "board", models, db,
                         zip_on_board)
                close_pool()
        else:
            print(f"ssh board: skipped ({available()})")
        phone_overhead(tmp, models, db)
        added_costs(tmp)
        two_processes(tmp, models)
        # N = the host's cores measures the scheduler; N = twice that also measures the
        # simulated phones' own Python work competing for the same cores.
        cores = os.cpu_count() or 2
        for n in sorted({cores, 2 * cores}):
            parallel(tmp, models[:3], n_phones=n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
