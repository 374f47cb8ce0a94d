"""ruff keeps the habits: the rules in pyproject.toml ([tool.ruff]) are checked on every
test run, so an unused import, an undefined name or a late-bound loop variable fails CI
instead of waiting for a reviewer."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    exe = Path(sys.executable).with_name("ruff")
    proc = subprocess.run([str(exe), "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
