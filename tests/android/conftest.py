"""Fixtures for the Android demo tests: tiny real models (built once per session)
and the host Java toolchain from Debian's packages."""
from __future__ import annotations

import os

import pytest

from tests.conftest import require_tool

from . import models

JARS = {
    "junit": ["/usr/share/java/junit4.jar"],
    "hamcrest": ["/usr/share/java/hamcrest-core.jar", "/usr/share/java/hamcrest.jar"],
    "org.json": ["/usr/share/java/com.android.json.jar"],  # Debian: libandroid-json-java
}
APT = {"junit": "junit4", "hamcrest": "junit4 (libhamcrest-java)", "org.json": "libandroid-json-java"}


def require_jar(name: str) -> str:
    """A jar from Debian's packages; skip when missing, fail under EDGERT_REQUIRE_ALL=1 (CI)."""
    jar = next((j for j in JARS[name] if os.path.exists(j)), None)
    if jar:
        return jar
    msg = f"{name} jar is not installed (apt-get install {APT[name]}; .ci/run does)"
    if os.environ.get("EDGERT_REQUIRE_ALL") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def java_classpath() -> str:
    """The jars the core and its tests compile against (JDK tools checked too)."""
    require_tool("javac")
    require_tool("java")
    return os.pathsep.join(require_jar(name) for name in JARS)


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
