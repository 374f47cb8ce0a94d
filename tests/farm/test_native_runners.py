"""The native-binary runners on the simulated phone.

LiteRT's ``benchmark_model`` and MNN's ``benchmark.out`` are ARM Android
binaries and cannot run here. What can be checked for real is everything around
them: the binary and libraries go through the device cache (executable), the
command line the farm builds (flags, quoting, affinity, library path, the model
folder MNN wants), and parsing inside a job. So stand-in scripts take the
binaries' place: each records the arguments and environment it was given and
prints the tool's documented output. The parsers themselves are tested on
published outputs in test_parsers.py.
"""
from __future__ import annotations

import json
import os

import pytest

from device_farm import farm
from device_farm.store import ResultStore
from tests.farm.helpers import inventory, phone_spec

pytestmark = pytest.mark.needs_adb

DATA = os.path.join(os.path.dirname(__file__), "data")


def WORKDIR(phone):
    """/data/local/tmp/edgert of the simulated phone, where the runners run."""
    return os.path.join(phone.root, "data_local_tmp", "edgert")


def read_call(phone, tool):
    """What the stand-in recorded, with the simulator's sandbox paths shown as the
    phone's (the simulator maps /data/local/tmp into its sandbox)."""
    with open(os.path.join(WORKDIR(phone), f"{tool}.call.json")) as f:
        text = f.read()
    return json.loads(text.replace(os.path.join(phone.root, "data_local_tmp"),
                                   "/data/local/tmp"))

_STANDIN = """#!/bin/sh
# stand-in for {tool}: record how it was called (into the folder it runs in, the
# farm's workdir), then print the tool's documented output
python3 -c 'import json, os, sys; prog, args = sys.argv[1], sys.argv[2:]; json.dump({{
    "argv": args, "cwd": os.getcwd(), "ld": os.environ.get("LD_LIBRARY_PATH", ""),
    "x": os.access(prog, os.X_OK),
    "folder": sorted(os.listdir(args[0])) if args and os.path.isdir(args[0]) else None}},
    open("{tool}.call.json", "w"))' "$0" "$@"
cat <<'OUT'
{output}OUT
"""


def _standin(tmp_path, tool, sample):
    with open(os.path.join(DATA, sample)) as f:
        output = f.read()
    path = tmp_path / tool
    path.write_text(_STANDIN.format(tool=tool, output=output))
    return str(path)


def test_litert_and_mnn_binaries_on_a_phone(tmp_path, models, adb_server, phone):
    lib = tmp_path / "libMNN.so"
    lib.write_bytes(b"\x7fELF stand-in")
    spec = phone_spec(phone, adb_server, "nopython", python="", cpu_mask="3",
                      runners={"tflite": "litert_benchmark_model", "mnn": "mnn_benchmark"},
                      binaries={"benchmark_model": _standin(tmp_path, "benchmark_model",
                                                            "litert_logcat_android.txt"),
                                "mnn_benchmark": _standin(tmp_path, "benchmark.out",
                                                          "mnn_benchmark_new.txt"),
                                "mnn_libs": [str(lib)]})
    db = str(tmp_path / "r.sqlite")
    s = farm.bench([models["mnn"]], inventory=inventory(spec), devices=["nopython"], db=db,
                   runs=20, warmup=5, threads=2, precisions=("fp16",))
    assert (s.ok, s.failed) == (1, 0)
    call = read_call(phone, "benchmark.out")
    folder = call["argv"][0]
    assert folder.startswith("/data/local/tmp/edgert/mnn-runs/")
    assert call["argv"][1:] == ["20", "5", "0", "2", "2"]  # loop warmup forward threads fp16
    assert call["folder"] == ["model.mnn"] and call["x"] is True
    assert call["ld"].startswith("/data/local/tmp/edgert/cache/")
    with ResultStore(db) as store:
        (row,) = store.results(s.run_id)
    assert (row["mean_ms"], row["min_ms"], row["max_ms"]) == (69.652, 68.989, 77.896)
    assert row["runner"] == "mnn_benchmark" and row["engine"] == "mnn"
    assert row["median_ms"] is None and row["threads"] == 4  # as the tool reported it
    assert json.loads(row["extra_json"])["binary"].endswith("/benchmark.out")
    assert row["format"] == "mnn" and row["precision"] == "fp16"


def test_litert_command_line(tmp_path, adb_server, phone):
    from device_farm.deploy import DeployCache
    from device_farm.runners import RunContext, get_runner
    from device_farm.jobs import Job, ModelFile
    from device_farm.transports import open_transport

    spec = phone_spec(phone, adb_server, "nopython", python="", cpu_mask="3",
                      binaries={"benchmark_model": _standin(tmp_path, "benchmark_model",
                                                            "litert_logcat_android.txt")})
    t = open_transport(spec)
    ctx = RunContext(spec, t, DeployCache(t, spec.workdir))
    model = ModelFile(path="/host/x.tflite", name="it's; x.tflite", sha256="a" * 64,
                      format="tflite", size=1)
    job = Job(model=model, device="nopython", runner="litert_benchmark_model", runs=25,
              warmup=3, threads=4, precision="fp16", cooldown_s=1)
    runner = get_runner("litert_benchmark_model")
    cmd = runner.command(ctx, job, "/data/local/tmp/edgert/cache/aaa/it's; x.tflite")
    res = t.shell(cmd, timeout=30)
    assert res.exit_code == 0, res.stderr
    call = read_call(phone, "benchmark_model")
    assert call["argv"] == ["--graph=/data/local/tmp/edgert/cache/aaa/it's; x.tflite",
                            "--num_threads=4", "--warmup_runs=3", "--num_runs=25",
                            "--min_secs=0", "--warmup_min_secs=0", "--max_secs=600",
                            "--use_xnnpack=true", "--report_peak_memory_footprint=true",
                            "--xnnpack_force_fp16=true"]
    assert cmd.startswith("mkdir -p /data/local/tmp/edgert && cd /data/local/tmp/edgert && "
                          "sleep 1 && taskset 3 ")
    out = runner.parse(res.stdout, res.stderr, job)
    assert out["median_ms"] == pytest.approx(141.253) and out["runs"] == 25
