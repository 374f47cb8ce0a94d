"""Fixtures of the converter tests: zoo models built and exported once per session
(the private edgert cache comes from tests/conftest.py)."""
from __future__ import annotations

import pytest

class _ZooCache:
    """``zoo_models["resnet18"]``: each model built once, at the test resolution."""

    def __init__(self) -> None:
        self._built = {}

    def __getitem__(self, name: str):
        if name not in self._built:
            from converters import zoo
            self._built[name] = zoo.build(name, resolution=zoo_test_resolution(name), seed=0)
        return self._built[name]


def zoo_test_resolution(name: str):
    from converters import zoo
    return zoo.TEST_RESOLUTION if zoo.kind(name) in ("image", "segmentation") else None


@pytest.fixture(scope="session")
def zoo_models():
    return _ZooCache()


class _SourceCache:
    """``zoo_sources["resnet18"]``: each zoo model exported once (default exporter)."""

    def __init__(self, models: _ZooCache) -> None:
        self._models = models
        self._sources = {}

    def __getitem__(self, name: str):
        if name not in self._sources:
            from converters.frontends import load_source
            self._sources[name] = load_source(self._models[name])
        return self._sources[name]


@pytest.fixture(scope="session")
def zoo_sources(zoo_models):
    return _SourceCache(zoo_models)


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("converted")
