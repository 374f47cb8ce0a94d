"""Progress and timing: stages with elapsed time on a terminal (checked in a
pseudo-terminal), nothing drawn for pipes or --json, a timing line at the end."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from edgert.cli.progress import SLOW_EXPORT_SECONDS, exporter_hint, timing_line
from tests.cli.helpers import REPO, edgert_process
from tests.converters import onnx_builders as ob

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("progress") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


def _in_terminal(*argv, timeout: float = 240.0):
    """(exit code, everything the terminal showed) of ``edgert ARGV`` with stdin, stdout
    and stderr on a pseudo-terminal, as a person at a shell runs it."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=REPO, TERM="xterm-256color", COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "edgert", *map(str, argv)], stdin=slave,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                raise AssertionError(f"no output for {timeout} s")
            try:
                data = os.read(master, 65536)
            except OSError:            # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=30)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_convert_shows_each_stage_with_its_time_in_a_terminal(conv_onnx, tmp_path):
    code, screen = _in_terminal("convert", conv_onnx, "--out", tmp_path, "--to", "mnn,tflite",
                                "--precision", "fp32,fp16")
    assert code == 0, screen
    # each target is run by verification as soon as it is written ("convert and run"), the
    # verify stage compares
    for stage in ("recognize", "export", "passes", "save", "reference [fp32]",
                  "convert and run [fp32]", "convert and run [fp16]", "compare [fp16]",
                  "write"):
        assert re.search(rf"✓ {re.escape(stage)}  \d+\.\d s", screen), (stage, screen)
    assert re.search(r"time: .*convert and run \d+\.\d s.*\(total \d+\.\d s\)", screen)
    assert "verification PASSED" in screen


def test_bench_shows_its_steps_in_a_terminal(conv_onnx, tmp_path):
    code, screen = _in_terminal("bench", conv_onnx, "--runs", "3", "--warmup", "1")
    assert code == 0, screen
    assert re.search(r"✓ loading  \d+\.\d s", screen)
    assert re.search(r"✓ 1 warm-up \+ 3 timed runs  \d+\.\d s", screen)


def test_json_in_a_terminal_draws_nothing(conv_onnx, tmp_path):
    code, screen = _in_terminal("bench", conv_onnx, "--runs", "2", "--json")
    assert code == 0, screen
    assert "✓" not in screen
    assert json.loads(screen)["runs"] == 2          # the terminal shows the JSON alone


def test_a_pipe_gets_no_progress_but_the_timing_line(conv_onnx, tmp_path):
    proc = edgert_process("convert", conv_onnx, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "✓" not in proc.stdout + proc.stderr and "\x1b[" not in proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("time: "))
    assert re.fullmatch(r"time: .*convert and run \d+\.\d s.*\(total \d+\.\d s\)", line)


def test_timing_line_adds_up():
    line = timing_line([("export", 22.84), ("passes", 0.01), ("convert", 3.1)], 27.0)
    assert line == "time: export 22.8 s, convert 3.1 s, other 1.1 s (total 27.0 s)"


def test_slow_dynamo_export_gets_a_hint():
    def report(exporter, export_s):
        return SimpleNamespace(source={"exporter": exporter}, stages={"export": export_s},
                               seconds=export_s + 5)

    hint = exporter_hint(report("dynamo", SLOW_EXPORT_SECONDS + 12.8))
    assert hint.startswith("hint: the dynamo exporter took 22.8 s of 27.8 s")
    assert "--exporter torchscript" in hint
    assert exporter_hint(report("dynamo", SLOW_EXPORT_SECONDS - 1)) is None
    assert exporter_hint(report("torchscript", 60.0)) is None
    assert exporter_hint(report(None, 60.0)) is None


def test_prune_and_calibrate_show_their_steps_in_a_terminal(conv_onnx, tmp_path):
    code, screen = _in_terminal("prune", conv_onnx, "--out", tmp_path, "--to", "tflite")
    assert code == 0, screen
    assert re.search(r"✓ pruning  \d+\.\d s", screen)
    assert re.search(r"✓ convert and run  \d+\.\d s", screen)   # then the conversion's
    assert re.search(r"✓ compare  \d+\.\d s", screen)
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32))
    code, screen = _in_terminal("calibrate", conv_onnx, "--data", data, "--method", "entropy",
                                "-o", tmp_path / "t.json")
    assert code == 0, screen
    assert re.search(r"✓ calibrating \(entropy\)  \d+\.\d s", screen)
    assert re.search(r"time: calibrating \(entropy\) \d+\.\d s", screen)
