"""Jobs: one model on one device with one setting, and the plan of a run.

A job's key hashes what makes its result what it is (model content, device,
runner, precision, engine, threads, runs, warmup, cool-down), so a resumed run
recognises the jobs it already finished whatever order they come in.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from device_farm.errors import DeviceError
from device_farm.variants import Variant, describe_file, variant_of_row
from edgert.errors import ModelFileError


@dataclass
class ModelFile:
    """A model on the host, identified by its content, with what it is (its variant:
    model, precision from its conversion report or its own bytes, pruned/sparse)."""

    path: str
    name: str
    sha256: str
    format: str
    size: int
    quantized: Optional[bool] = None
    variant: Optional[Dict[str, object]] = None

    @classmethod
    def from_path(cls, path: str) -> "ModelFile":
        from edgert.files import file_sha256
        from edgert.model_file import check_model_file

        path = os.path.abspath(path)
        check = check_model_file(path)
        quantized = check.details.get("quantized")
        variant = describe_file(path, check.format, check.size)
        return cls(path=path, name=os.path.basename(path), sha256=file_sha256(path),
                   format=check.format, size=check.size,
                   quantized=bool(quantized) if quantized is not None else None,
                   variant=variant.to_dict())

    def describe(self) -> Variant:
        """The variant (a plan stored by an older edgert has none: read the file now)."""
        if self.variant:
            return Variant.from_dict(self.variant)
        return variant_of_row({"model_path": self.path, "format": self.format,
                               "model_sha256": self.sha256, "model_name": self.name,
                               "model_precision": "int8" if self.quantized else None})

    @property
    def precision(self) -> str:
        """What the file holds (fp32, fp16, int8_weights, int4_weights, int8)."""
        return self.describe().precision


@dataclass
class Job:
    """One benchmark to run."""

    model: ModelFile
    device: str
    runner: str
    precision: str = "auto"
    engine: Optional[str] = None
    threads: Optional[int] = None
    runs: int = 50
    warmup: int = 5
    cooldown_s: float = 0.0
    timeout_s: float = 600.0
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            ident = {"model": self.model.sha256, "device": self.device, "runner": self.runner,
                     "precision": self.precision, "engine": self.engine,
                     "threads": self.threads, "runs": self.runs, "warmup": self.warmup,
                     "cooldown_s": self.cooldown_s}
            self.key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        return f"{self.model.name} [{self.variant_label}]"

    @property
    def variant_label(self) -> str:
        return self.model.describe().label(self.precision)

    def settings(self) -> Dict[str, object]:
        return {"runner": self.runner, "precision": self.precision, "engine": self.engine,
                "threads": self.threads, "runs": self.runs, "warmup": self.warmup,
                "cooldown_s": self.cooldown_s, "timeout_s": self.timeout_s}

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "Job":
        d = dict(d)
        d["model"] = ModelFile(**d["model"])  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]

    def check_model_unchanged(self) -> None:
        """A resumed job must benchmark the same bytes it was planned with."""
        from edgert.files import file_sha256

        if not os.path.exists(self.model.path):
            raise ModelFileError(f"{self.model.path}: the model file of this run is gone")
        if file_sha256(self.model.path) != self.model.sha256:
            raise ModelFileError(f"{self.model.path}: the file changed since the run was "
                                 "planned (sha256 differs); start a new run")


def plan_jobs(models: Sequence[ModelFile], devices: Sequence, runner_for,
              precisions: Sequence[str] = ("auto",), **settings) -> List[Job]:
    """Every model x device x precision, device-major so each device's queue is in order.

    ``runner_for(spec, model) -> runner name`` picks the runner of each pair.
    """
    if not models:
        raise ModelFileError("no model files given")
    if not devices:
        raise DeviceError("no devices selected")
    jobs: List[Job] = []
    seen = set()
    for spec in devices:
        for model in models:
            for precision in precisions:
                job = Job(model=model, device=spec.name, runner=runner_for(spec, model),
                          precision=precision, **settings)
                if job.key not in seen:
                    seen.add(job.key)
                    jobs.append(job)
    return jobs
