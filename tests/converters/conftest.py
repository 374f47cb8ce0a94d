"""Fixtures of the converter tests: zoo models built and exported once per session
(the private edgert cache comes from tests/conftest.py)."""
from __future__ import annotations

import pytest

# MNN computes ONNX Gelu as the tanh approximation: 4.7e-4 away from erf GELU at
# x = -2.7 on one op (9.5e-5 of max|ref| on the zoo's transformer), and the fp32 bound
# of converters/verify.py (16 roundoffs per op) fails it, as it should: the conformance
# case gelu_default_2 was "silent". Computing Gelu right on MNN (a rewrite into Erf,
# which MNN computes to 3.6e-8) belongs to MNN's list of wrong ops (converters/mnn/);
# until it lands these cases fail, and these strict xfails say so.
MNN_GELU = pytest.mark.xfail(strict=True, reason=(
    "MNN computes Gelu as the tanh approximation (9.5e-5 of max|ref|), beyond the fp32 "
    "bound; fixed by rewriting Gelu for MNN (converters/mnn wrong-op list)"))


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
