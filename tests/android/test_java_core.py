"""The app's plain-Java core, compiled and unit-tested on the host with Debian's JDK
and JUnit, against numbers edgert's Python code writes in this run."""
from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import re
import subprocess

import pytest

from device_farm.android_assets import AssetOptions, write_assets
from edgert.preprocess import PreprocessSpec, preprocess, write_ppm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "android_demo", "core")
SCRIPT = os.path.join(ROOT, "android_demo", "scripts", "make_test_vector.py")
COMMITTED = os.path.join(CORE, "src", "test", "resources", "testvector")
TEST_CLASSES = ["SharedVectorTest", "ManifestTest", "CoreTest", "AssetsManifestTest",
                "AppAssetsTest", "ReportTest"]
JUNIT_TESTS = 17  # the @Test methods in those classes

pytestmark = pytest.mark.needs_java


def _vector_module():
    spec = importlib.util.spec_from_file_location("make_test_vector", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fresh_vector(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("testvector")
    _vector_module().build_vector(str(out))
    return str(out)


def test_committed_vector_is_current(fresh_vector):
    for name in ("vector.json", "image.ppm"):
        assert filecmp.cmp(os.path.join(COMMITTED, name), os.path.join(fresh_vector, name),
                           shallow=False), (
            f"{name} is stale: run python android_demo/scripts/make_test_vector.py")


@pytest.fixture(scope="module")
def real_assets(tmp_path_factory, model_files) -> str:
    """Assets for real converted models, plus what Python expects the Java side to read."""
    out = tmp_path_factory.mktemp("assets")
    opts = AssetOptions(labels=[str(i) for i in range(10)], mean=(0.5, 0.4, 0.3),
                        std=(0.2, 0.25, 0.3), resize="center_crop", check="structure")
    logits = write_assets([model_files["mnn"]], str(out), opts)["models"]
    q_opts = AssetOptions(mean=(0.5,), std=(0.5,), check="structure")
    manifest = write_assets([model_files["mnn"], model_files["tflite_int8"]], str(out), q_opts)
    manifest["models"][0] = logits[0]  # keep the labelled, normalized entry for the .mnn
    with open(out / "edgert_manifest.json", "w") as f:
        json.dump(manifest, f)
    img = _vector_module().vector_image(seed=5)
    write_ppm(str(out / "sample.ppm"), img)
    expect = {"image": "sample.ppm", "models": []}
    for m in manifest["models"]:
        spec = PreprocessSpec.from_dict(m["preprocess"])
        floats = PreprocessSpec.from_dict({**m["preprocess"], "quantization": None,
                                           "dtype": "float32"})
        q = m["inputs"][0]["quantization"]
        expect["models"].append({
            "name": m["name"], "format": m["format"], "input": m["inputs"][0]["name"],
            "input_shape": m["inputs"][0]["shape"], "input_dtype": m["inputs"][0]["dtype"],
            "layout": spec.layout, "classes": m["postprocess"]["classes"],
            "softmax": m["postprocess"]["softmax"], "output": m["postprocess"]["output"],
            "labels": len(m["labels"] or []),
            "input_scale": q["scale"][0] if q else None,
            "input_zero_point": q["zero_point"][0] if q else None,
            "sample_input": [float(v) for v in preprocess(img, floats).reshape(-1)],
            "sample_quantized": ([int(v) for v in preprocess(img, spec).reshape(-1)]
                                 if spec.quantization else None)})
    with open(out / "expect.json", "w") as f:
        json.dump(expect, f)
    return str(out)


def _bench_keys() -> str:
    """The keys of ``BenchmarkResult.to_dict(latencies=False)``: what the app's JSON must have."""
    from edgert.timing import BenchmarkResult

    return ",".join(k for k in BenchmarkResult.__dataclass_fields__ if k != "latencies_ms")


def _sources(sub: str):
    root = os.path.join(CORE, "src", sub, "java")
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".java")]


def test_java_core_unit_tests_pass(java_classpath, fresh_vector, real_assets, tmp_path):
    classes = tmp_path / "classes"
    compile_cmd = ["javac", "--release", "11", "-Xlint:all", "-Werror", "-encoding", "UTF-8",
                   "-d", str(classes), "-cp", java_classpath, *_sources("main"), *_sources("test")]
    done = subprocess.run(compile_cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"javac failed:\n{done.stdout}\n{done.stderr}"
    app_assets = os.path.join(ROOT, "android_demo", "app", "src", "main", "assets")
    run_cmd = ["java", f"-Dedgert.testvector={fresh_vector}", f"-Dedgert.assets={real_assets}",
               f"-Dedgert.appassets={app_assets}", f"-Dedgert.benchkeys={_bench_keys()}",
               "-cp", os.pathsep.join([str(classes), java_classpath]),
               "org.junit.runner.JUnitCore", *[f"dev.edgert.demo.core.{c}" for c in TEST_CLASSES]]
    done = subprocess.run(run_cmd, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"JUnit failed:\n{out}"
    assert re.search(rf"^OK \({JUNIT_TESTS} tests\)$", done.stdout, re.M), out
    assert "edgert assets manifest: 2 models checked" in done.stdout, out
