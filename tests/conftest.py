"""Shared test set-up.

- The isolated-load verdict cache goes to a per-session temporary folder, so
  tests never read or write the user's ~/.cache.
- ``require_tool`` skips a test when a system part (sshd, adb, javac) is
  missing, except under ``EDGERT_REQUIRE_ALL=1`` (set by .ci/run), where a
  missing part is a failure: CI must not go green by skipping.
"""
from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    old = os.environ.get("EDGERT_CACHE_DIR")
    os.environ["EDGERT_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgert-cache"))
    yield
    if old is None:
        os.environ.pop("EDGERT_CACHE_DIR", None)
    else:
        os.environ["EDGERT_CACHE_DIR"] = old


def require_tool(name: str) -> str:
    """Path of executable ``name``; skip (or fail under EDGERT_REQUIRE_ALL=1) when absent."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    msg = f"{name} is not installed (apt-get install it; .ci/run does)"
    if os.environ.get("EDGERT_REQUIRE_ALL") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def require_module(name: str):
    """Import ``name``; skip (or fail under EDGERT_REQUIRE_ALL=1) when it is not installed."""
    try:
        return __import__(name)
    except ImportError:
        msg = f"python package {name} is not installed"
        if os.environ.get("EDGERT_REQUIRE_ALL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
