"""Farm overhead and parallelism, measured against baselines taken in the same run.

1. Overhead per job on the local device and on an SSH board (a real sshd on
   localhost): the marginal wall time of one more job in a farm run (caches warm:
   models already on the device; from runs of 1 and of 6 jobs), minus the bare
   ``python -m edgert bench`` time of the same command run directly (for the
   board: importing edgert from the zip the farm deployed). Goal: < 0.5 s per job.
2. Parallelism: N simulated phones (ADB simulator behind the real adb server),
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


def make_models(folder: str, n: int):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    paths = []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
        g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "m",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
                              [w])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        p = os.path.join(folder, f"m{i}.onnx")
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
        # N = the host's cores measures the scheduler; N = twice that also measures the
        # simulated phones' own Python work competing for the same cores.
        cores = os.cpu_count() or 2
        for n in sorted({cores, 2 * cores}):
            parallel(tmp, models[:3], n_phones=n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
