"""A latency meter on a farm device, for ``edgert optimize`` (docs/OPTIMIZE.md).

The search (``converters.optimize``) asks a *meter* to time a batch of model files:
``measure(paths, label) -> {path: mapping}``, each mapping with ``ok`` and, when ok,
``min_ms``, ``median_ms``, ``latencies_ms`` and where the figure lives (``run_id``,
``job_key``, ``device``). ``FarmMeter`` runs each batch as one farm run on one
device (``farm.bench``): the rows land in the results store beside every other
benchmark, with the device's state and the variant of each file.

The farm does not import the converters (the two packages stand side by side), so
a device that drops in the middle of a batch is a ``DeviceDropped`` (a
``DeviceError``) carrying the measurements that finished (``done``); the search
keeps those and stops resumably.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from device_farm.errors import DeviceError


class DeviceDropped(DeviceError):
    """The device stopped serving during a batch; ``done`` holds what was measured."""

    def __init__(self, message: str, done: Optional[Dict[str, Mapping[str, Any]]] = None
                 ) -> None:
        super().__init__(message)
        self.done = dict(done or {})


class FarmMeter:
    """Times model files on one device of the farm, one farm run per batch."""

    def __init__(self, device: str = "host", *, db: Optional[str] = None, inventory: Any = None,
                 runs: int = 50, warmup: int = 5, threads: Optional[int] = 1,
                 timeout_s: float = 600.0, retries: int = 2, lock_wait_s: float = 3600.0,
                 locks: Any = None) -> None:
        from device_farm.farm import DEFAULT_DB
        from device_farm.inventory import load_inventory

        self.device, self.db = device, db or DEFAULT_DB
        self.inventory = inventory if inventory is not None and not isinstance(
            inventory, (str, os.PathLike)) else load_inventory(inventory)
        self.inventory.get(device)          # an unknown name fails here, before any work
        self.runs, self.warmup, self.threads = runs, warmup, threads
        self.timeout_s, self.retries, self.lock_wait_s = timeout_s, retries, lock_wait_s
        self.locks = locks
        self.description = f"device {device} through the farm (store {self.db})"

    def measure(self, paths: Sequence[str], label: str = "") -> Dict[str, Dict[str, Any]]:
        """``{path: mapping}`` for every path; raises ``DeviceDropped`` (with the
        finished ones) when the device dropped or was unavailable."""
        from device_farm.farm import bench
        from device_farm.store import ResultStore

        from edgert.files import file_sha256

        paths = list(paths)
        by_sha: Dict[str, list] = {}      # identical files are one farm job: each gets its row
        for p in paths:
            by_sha.setdefault(file_sha256(p), []).append(p)
        # MNN's "auto" may run fp16 where the CPU has it: the search times what it built
        precision = "fp32" if all(p.endswith(".mnn") for p in paths) else "auto"
        summary = bench(paths, devices=[self.device], inventory=self.inventory, db=self.db,
                        precisions=(precision,), threads=self.threads, runs=self.runs,
                        warmup=self.warmup, timeout_s=self.timeout_s, retries=self.retries,
                        lock_wait_s=self.lock_wait_s, locks=self.locks,
                        argv=["edgert optimize", label])
        with ResultStore(self.db) as store:
            rows = store.results(summary.run_id)
        out: Dict[str, Dict[str, Any]] = {}
        for row in rows:
            for path in by_sha.get(str(row["model_sha256"]), ()):
                out[path] = _mapping(row)
        lost = summary.dropped or summary.unavailable
        if lost or summary.interrupted or any(r.get("status") == "not_run" for r in rows):
            done = {p: m for p, m in out.items() if m["ok"]}
            why = "; ".join(f"{k}: {v}" for k, v in {**summary.unavailable,
                                                     **summary.dropped}.items())
            raise DeviceDropped(f"device {self.device} stopped serving during farm run "
                                f"{summary.run_id} ({len(done)} of {len(paths)} file(s) "
                                f"measured){': ' + why if why else ''}", done)
        for p in paths:
            out.setdefault(p, {"ok": False, "error": f"no result in run {summary.run_id}"})
        return out


def _mapping(row: Mapping[str, Any]) -> Dict[str, Any]:
    where = {"run_id": row.get("run_id"), "job_key": row.get("job_key"),
             "device": row.get("device")}
    if row.get("status") != "ok":
        return {"ok": False, "error": str(row.get("error") or row.get("status")), **where}
    lat = json.loads(str(row["latencies_json"])) if row.get("latencies_json") else []
    return {"ok": True, "min_ms": row.get("min_ms"), "median_ms": row.get("median_ms"),
            "latencies_ms": lat, **where}
