"""The demo app's bundled assets (committed) and the script behind ``make android-assets``."""
from __future__ import annotations

import importlib.util
import os

import pytest

import edgert
from device_farm.android_assets import load_manifest
from edgert.files import file_sha256
from edgert.postprocess import softmax, top_k
from edgert.preprocess import PreprocessSpec, preprocess, read_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_ASSETS = os.path.join(ROOT, "android_demo", "app", "src", "main", "assets")
SCRIPT = os.path.join(ROOT, "android_demo", "scripts", "build_demo_assets.py")


def classify_samples(assets: str) -> dict:
    """What the app shows for each bundled sample, computed with edgert's Python pipeline."""
    pytest.importorskip("PIL")
    manifest = load_manifest(assets)
    results = {}
    for m in manifest["models"]:
        spec = PreprocessSpec.from_dict(m["preprocess"])
        with edgert.load(os.path.join(assets, m["file"]), check="structure") as sess:
            for sample in manifest["samples"]:
                y = sess.run(preprocess(read_image(os.path.join(assets, sample)), spec))
                scores = y[m["postprocess"]["output"]]
                scores = softmax(scores) if m["postprocess"]["softmax"] else scores
                idx, _ = top_k(scores, 1)[0]
                results[(m["file"], os.path.basename(sample))] = m["labels"][idx]
    return results


def _expected_digit(sample: str) -> str:
    return os.path.splitext(sample)[0].rsplit("_", 1)[1]  # digit_7.png -> "7"


def test_committed_assets_are_consistent_and_classify_their_samples():
    manifest = load_manifest(APP_ASSETS)
    for m in manifest["models"]:
        path = os.path.join(APP_ASSETS, m["file"])
        assert file_sha256(path) == m["sha256"] and os.path.getsize(path) == m["size_bytes"]
    assert len(manifest["samples"]) == 10
    results = classify_samples(APP_ASSETS)
    assert {k: v for k, v in results.items()} == {k: _expected_digit(k[1]) for k in results}


def test_build_script_writes_a_working_app_bundle(tmp_path):
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("build_demo_assets", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    manifest = mod.build(str(tmp_path), check="structure")
    (m,) = manifest["models"]
    assert m["preprocess"]["color"] == "GRAY" and m["preprocess"]["layout"] == "NCHW"
    assert m["labels"] == [str(d) for d in range(10)] and m["postprocess"]["softmax"] is True
    results = classify_samples(str(tmp_path))
    assert results == {k: _expected_digit(k[1]) for k in results}
