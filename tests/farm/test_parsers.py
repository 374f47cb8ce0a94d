"""Output parsers of the runners and the device probes, on documented outputs."""
from __future__ import annotations

import json
import os

import pytest

from device_farm.probes import parse_info, parse_state, throttle_reasons
from device_farm.runners.base import RunnerError
from device_farm.runners.edgert_runner import parse_bench_json
from device_farm.runners.litert_native import parse_benchmark_model_output
from device_farm.runners.mnn_native import parse_mnn_benchmark_output
from device_farm.testing.phone_image import load_phone

DATA = os.path.join(os.path.dirname(__file__), "data")


def _read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def test_litert_logcat_with_median():
    out = parse_benchmark_model_output(_read("litert_logcat_android.txt"))
    assert out["init_ms"] == pytest.approx(92.318)
    assert out["first_run_ms"] == pytest.approx(235.158)
    assert out["mean_ms"] == pytest.approx(145.528)
    # the timed runs' line (count=25), not the warm-up line (count=3)
    assert out["runs"] == 25
    assert out["min_ms"] == pytest.approx(140.071)
    assert out["max_ms"] == pytest.approx(195.121)
    assert out["median_ms"] == pytest.approx(141.253)
    assert out["std_ms"] == pytest.approx(13.583)
    assert out["extra"]["p95_ms"] == pytest.approx(187.533)
    assert out["extra"]["mem_delta_overall_mb"] == pytest.approx(73.4102)
    assert out["peak_rss_mb"] is None  # a delta is not a peak
    assert out["threads"] == 4
    assert out["p90_ms"] is None and out["p99_ms"] is None


def test_litert_older_output_has_no_median():
    out = parse_benchmark_model_output(_read("litert_stdout_rpi.txt"))
    assert out["runs"] == 50
    assert out["mean_ms"] == pytest.approx(33.0718)
    assert out["min_ms"] == pytest.approx(32.687)
    assert out["std_ms"] == pytest.approx(0.129)
    assert out["median_ms"] is None
    assert out["extra"]["warmup_avg_ms"] == pytest.approx(43.2681)
    assert out["threads"] == 1


def test_litert_peak_memory_and_info_prefix():
    out = parse_benchmark_model_output(_read("litert_stdout_peak.txt"))
    assert out["runs"] == 1061
    assert out["peak_rss_mb"] == pytest.approx(93.2383)
    assert out["mean_ms"] == pytest.approx(56.2658)


def test_litert_timings_line_only():
    out = parse_benchmark_model_output(_read("litert_stdout_rockpi_memdelta.txt"))
    assert out["mean_ms"] == pytest.approx(110.385)
    assert out["min_ms"] is None and "runs" not in out
    assert out["extra"]["mem_delta_init_mb"] == pytest.approx(4.58984)


def test_litert_failure_output_is_an_error():
    with pytest.raises(RunnerError, match="no 'Inference timings' line.*GPU delegate"):
        parse_benchmark_model_output("INFO: Created TensorFlow Lite delegate for GPU.\n"
                                     "ERROR: Failed to apply GPU delegate.\n"
                                     "Benchmarking failed.\n")


def test_mnn_benchmark_formats():
    new = parse_mnn_benchmark_output(_read("mnn_benchmark_new.txt"))
    assert (new["max_ms"], new["min_ms"], new["mean_ms"]) == (77.896, 68.989, 69.652)
    assert new["threads"] == 4 and new["runs"] == 20 and new["warmup"] == 5
    assert new["extra"]["mnn_precision"] == 2 and new["extra"]["forward"] == "CPU"
    old = parse_mnn_benchmark_output(_read("mnn_benchmark_old.txt"))
    assert (old["max_ms"], old["min_ms"], old["mean_ms"]) == (45.885, 39.539, 40.194)
    assert old["runs"] == 50 and "warmup" not in old
    assert old["median_ms"] is None


def test_mnn_benchmark_without_the_model_line():
    with pytest.raises(RunnerError, match="no result line for model.mnn"):
        parse_mnn_benchmark_output("MNN benchmark\nopen runs/x failed: No such file\n")
    with pytest.raises(RunnerError):
        parse_mnn_benchmark_output(_read("mnn_benchmark_new.txt"), model="other.mnn")


def test_edgert_json_after_noise():
    payload = {"runs": 3, "median_ms": 1.5, "engine": "mnn", "latencies_ms": [1, 2, 3]}
    out = parse_bench_json("The device supports: i8sdot:0\n" + json.dumps(payload) + "\n")
    assert out["median_ms"] == 1.5 and out["latencies_ms"] == [1, 2, 3]
    with pytest.raises(RunnerError, match="no JSON"):
        parse_bench_json("Traceback (most recent call last): ...")
    with pytest.raises(RunnerError, match="lacks median_ms"):
        parse_bench_json('{"runs": 1, "engine": "x"}')


def _probe_text(phone):
    """What the probe script prints on that phone (sections as the script writes them)."""
    cpus = "\n".join(f"cpu{i} {c['cur_khz']} {c['cap_khz']} {c['max_khz']}"
                     for i, c in enumerate(phone["cpus"]))
    zones = "\n".join(f"thermal_zone{i} {z['temp']} {z['type']}"
                      for i, z in enumerate(phone["thermal"]))
    props = "\n".join(f"{k}={v}" for k, v in phone["props"].items())
    return (f"@@uname\nLinux 5.10.198-android13 aarch64\n@@cpuinfo\n{phone['cpuinfo']}\n"
            f"@@nproc\n8\n@@meminfo\n{phone['meminfo']}@@getprop\n{props}\n@@os_release\n"
            f"@@dt_model\n\n@@l4t\n@@jetpack\n@@tools\ntimeout\ntaskset\n@@python\n"
            f"@@cpufreq\n{cpus}\n@@thermal\n{zones}\n")


def test_probe_parses_a_phone():
    info = parse_info(_probe_text(load_phone("pixel7")))
    assert info.arch == "arm64-v8a"
    assert info.soc == "Google GS201"
    assert info.cpu == "4x Cortex-A55 + 2x Cortex-A78 + 2x Cortex-X1"
    assert info.cores == 8
    assert info.max_freqs_mhz == [1803, 2348, 2850]
    assert info.memory_mb == 7824964 // 1024
    assert info.os == "Android 14 (SDK 34)" and info.android_sdk == 34
    assert info.kernel == "5.10.198-android13"
    assert info.tools == ["timeout", "taskset"] and info.python == ""


def test_probe_parses_a_jetson():
    text = ("@@uname\nLinux 5.10.120-tegra aarch64\n@@cpuinfo\n"
            + "".join(f"processor\t: {i}\nCPU implementer\t: 0x41\nCPU part\t: 0xd42\n\n"
                      for i in range(6))
            + "@@meminfo\nMemTotal:        7620928 kB\n@@getprop\n@@os_release\n"
              'PRETTY_NAME="Ubuntu 20.04.6 LTS"\n'
              "@@dt_model\nNVIDIA Jetson Orin Nano Developer Kit\n"
              "@@l4t\n# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: "
              "aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n@@jetpack\n5.1.2-b104\n@@tools\n"
              "timeout\ntaskset\npython3\n@@python\n3.8.10\n@@cpufreq\n"
            + "".join(f"cpu{i} 729600 1510400 1510400\n" for i in range(6)) + "@@thermal\n"
              "thermal_zone0 48531 cpu-thermal\n")
    info = parse_info(text)
    assert info.soc == "NVIDIA Jetson Orin Nano Developer Kit"
    assert info.cpu == "6x Cortex-A78AE"
    assert info.jetpack == "JetPack 5.1.2, L4T R35.4.1"
    assert info.os == "Ubuntu 20.04.6 LTS" and info.arch == "aarch64"
    assert info.max_freqs_mhz == [1510] and info.python == "3.8.10"
    assert info.memory_mb == 7620928 // 1024


def test_state_and_throttling():
    before = parse_state("@@cpufreq\ncpu0 1800000 2850000 2850000\ncpu1 - - -\n@@thermal\n"
                         "thermal_zone0 41234 BIG\nthermal_zone1 35 skin\n")
    assert before["cpus"]["cpu0"] == {"cur_khz": 1800000, "cap_khz": 2850000,
                                      "max_khz": 2850000}
    assert before["cpus"]["cpu1"] == {"cur_khz": None, "cap_khz": None, "max_khz": None}
    assert before["thermal"]["thermal_zone0"] == {"type": "BIG", "temp_c": 41.234}
    assert before["thermal"]["thermal_zone1"]["temp_c"] == 35.0  # already in degrees
    assert throttle_reasons(before, before) == []
    after = parse_state("@@cpufreq\ncpu0 1200000 2000000 2850000\n@@thermal\n"
                        "thermal_zone0 86000 BIG\n")
    reasons = throttle_reasons(before, after)
    assert reasons == ["cpu0 frequency cap fell from 2850 to 2000 MHz",
                       "thermal_zone0 (BIG) at 86 C"]
    capped = parse_state("@@cpufreq\ncpu0 1200000 2000000 2850000\n")
    assert throttle_reasons(None, capped) == ["cpu0 capped at 2000 of 2850 MHz"]
