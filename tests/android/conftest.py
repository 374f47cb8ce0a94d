"""Fixtures for the Android demo tests: tiny real models (built once per session)
and the host Java toolchain from Debian's packages."""
from __future__ import annotations

import os
import shutil

import pytest

from . import models

JARS = {
    "junit": ["/usr/share/java/junit4.jar"],
    "hamcrest": ["/usr/share/java/hamcrest-core.jar", "/usr/share/java/hamcrest.jar"],
    "org.json": ["/usr/share/java/com.android.json.jar"],  # Debian: libandroid-json-java
}
APT = {"junit": "junit4", "hamcrest": "junit4 (libhamcrest-java)", "org.json": "libandroid-json-java"}


def require(condition: bool, what: str) -> None:
    """Skip when a system part is missing; fail instead under EDGERT_REQUIRE_ALL=1 (CI)."""
    if condition:
        return
    if os.environ.get("EDGERT_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is missing and EDGERT_REQUIRE_ALL=1")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def java_classpath() -> str:
    """The jars the core and its tests compile against (JDK tools checked too)."""
    require(bool(shutil.which("javac")) and bool(shutil.which("java")),
            "a JDK (apt: default-jdk-headless)")
    found = []
    for name, candidates in JARS.items():
        jar = next((j for j in candidates if os.path.exists(j)), None)
        require(jar is not None, f"{name} jar (apt: {APT[name]})")
        found.append(jar)
    return os.pathsep.join(found)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict:
    """Real converted models: a float .mnn classifier (logits), a .mnn ending in a
    softmax, and an int8 .tflite with quantized input and output."""
    d = tmp_path_factory.mktemp("android_models")
    logits_onnx = models.build_onnx_classifier(str(d / "logits.onnx"), seed=0)
    probs_onnx = models.build_onnx_classifier(str(d / "probs.onnx"), seed=1, softmax=True)
    return {
        "onnx": logits_onnx,
        "mnn": models.onnx_to_mnn(logits_onnx, str(d / "tiny_logits.mnn")),
        "mnn_probs": models.onnx_to_mnn(probs_onnx, str(d / "tiny_probs.mnn")),
        "tflite_int8": models.build_int8_tflite(str(d / "tiny_int8.tflite")),
    }
