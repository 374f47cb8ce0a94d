"""Runners by name: a registry filled by a decorator (duplicates rejected).

``edgert`` (edgert's own ``python -m edgert bench`` on boards with Python) runs
every format; ``litert_benchmark_model`` and ``mnn_benchmark`` run LiteRT's and
MNN's native benchmark binaries on phones without Python.
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Type

from device_farm.runners.base import RunContext, Runner, RunnerError

__all__ = ["RunContext", "Runner", "RunnerError", "register_runner", "runner_names",
           "get_runner", "runner_for", "DEFAULT_RUNNER"]

_RUNNERS: Dict[str, Type[Runner]] = {}
_MODULES = ("device_farm.runners.edgert_runner", "device_farm.runners.litert_native",
            "device_farm.runners.mnn_native")
DEFAULT_RUNNER = "edgert"


def register_runner(cls: Type[Runner]) -> Type[Runner]:
    """Class decorator: add a runner under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _RUNNERS and _RUNNERS[cls.name] is not cls:
        raise ValueError(f"runner {cls.name!r} is registered twice "
                         f"({_RUNNERS[cls.name].__name__} and {cls.__name__})")
    _RUNNERS[cls.name] = cls
    return cls


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def runner_names() -> List[str]:
    _load()
    return sorted(_RUNNERS)


def get_runner(name: str) -> Runner:
    _load()
    if name not in _RUNNERS:
        raise RunnerError(f"unknown runner {name!r}; known: {', '.join(sorted(_RUNNERS))}")
    return _RUNNERS[name]()


def runner_for(spec, model) -> str:
    """The runner a device uses for a model's format (``runners`` in devices.toml)."""
    name = spec.runners.get(model.format, spec.runners.get("*", DEFAULT_RUNNER))
    runner = get_runner(name)
    if model.format not in runner.formats:
        raise RunnerError(f"device {spec.name}: runner {name} cannot run {model.format} "
                          f"models ({model.name}); it runs {', '.join(runner.formats)}")
    return name
