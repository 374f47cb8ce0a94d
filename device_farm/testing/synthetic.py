"""A store filled with many runs of seeded latencies, for the dashboard's tests
and its benchmark (page load with 10,000 results): real model files (their
variants read from their bytes), real rows (``worker.base_row``), latencies drawn
from a seeded log-normal around a chosen median per device, and chosen cells made
slower by a chosen factor (a regression planted where a test expects one).
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from device_farm.inventory import DeviceSpec
from device_farm.jobs import Job, ModelFile
from device_farm.store import ResultStore, now_iso
from device_farm.store.schema import results as results_table
from device_farm.worker import base_row


def fill_store(path: str, model_paths: Sequence[str], runs: int, devices: int,
               latencies: int = 30, seed: int = 7,
               slower: Optional[Dict[Tuple[int, str], float]] = None) -> List[str]:
    """Write ``runs`` runs of every model on ``devices`` local-like devices (dev0...);
    ``slower[(run index, device)]`` multiplies that cell's latencies. Returns run ids."""
    rng = np.random.default_rng(seed)
    files = [ModelFile.from_path(p) for p in model_paths]
    specs = [DeviceSpec(name=f"dev{i}", transport="local") for i in range(devices)]
    base_ms = {s.name: 2.0 + i for i, s in enumerate(specs)}
    run_ids = []
    with ResultStore(path) as store:
        for r in range(runs):
            run_id = f"run-{r:04d}"
            jobs = [Job(model=f, device=s.name, runner="edgert", runs=latencies, warmup=1)
                    for s in specs for f in files]
            store.start_run(run_id, "lab", "0", ["synthetic"], {}, [j.to_dict() for j in jobs])
            rows = []
            for job in jobs:
                spec = specs[int(job.device[3:])]
                factor = (slower or {}).get((r, job.device), 1.0)
                lat = np.sort(base_ms[job.device] * factor
                              * rng.lognormal(0.0, 0.03, size=latencies))
                row = base_row(run_id, job, spec, None)
                row.update(status="ok", engine="onnxruntime", engine_version="1",
                           median_ms=float(np.median(lat)), mean_ms=float(lat.mean()),
                           min_ms=float(lat[0]), max_ms=float(lat[-1]),
                           p90_ms=float(np.percentile(lat, 90)),
                           latencies_json=json.dumps([round(float(x), 4) for x in lat]),
                           finished_at=now_iso(), attempts=1, throttled=0)
                rows.append(row)
            with store._engine.begin() as conn:   # noqa: SLF001 - one commit per run
                conn.execute(results_table.insert(), rows)
            store.set_run_status(run_id, "done")
            run_ids.append(run_id)
    return run_ids
