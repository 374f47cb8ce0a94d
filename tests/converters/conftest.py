"""Fixtures of the converter tests: zoo models built once per session, and a
private edgert cache so tests never touch the user's ~/.cache."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _converters_private_cache(tmp_path_factory):
    old = os.environ.get("EDGERT_CACHE_DIR")
    os.environ["EDGERT_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgert-cache-converters"))
    yield
    if old is None:
        os.environ.pop("EDGERT_CACHE_DIR", None)
    else:
        os.environ["EDGERT_CACHE_DIR"] = old


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
