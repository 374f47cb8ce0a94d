"""mypy on the public API of each package (what users import: edgert's load/Session,
convert(), the tables, the farm's store and inventory) finds nothing: a wrong or missing
type there is a broken promise to every caller. Modules behind them are followed
silently (their own findings are not yet zero; the list grows as they are fixed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = [
    "edgert/__init__.py", "edgert/session.py", "edgert/errors.py", "edgert/tensors.py",
    "edgert/timing.py", "edgert/outputs.py", "edgert/postprocess.py", "edgert/mnn_summary.py",
    "edgert/quantization.py", "edgert/isolated_run.py", "edgert/engine_pool.py",
    "converters/__init__.py", "converters/api.py", "converters/errors.py",
    "converters/options.py",
    "quant_tables/__init__.py", "quant_tables/errors.py", "quant_tables/table.py",
    "quant_tables/sparsity_table.py", "quant_tables/calibration_data.py",
    "quant_tables/provenance.py",
    "device_farm/__init__.py", "device_farm/errors.py", "device_farm/inventory.py",
    "device_farm/store/__init__.py",
]


def test_mypy_finds_nothing_in_the_public_api(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "mypy"), *PUBLIC],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
