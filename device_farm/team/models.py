"""Model files on an agent's machine: the bytes a submitter stored (by sha256),
fetched once into the agent's cache and checked against their hash."""
from __future__ import annotations

import hashlib
import os

from device_farm.store import ResultStore
from edgert.errors import ModelFileError


def cache_dir() -> str:
    base = os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgert")
    return os.path.join(base, "farm", "agent-models")


def fetch_model(store: ResultStore, model) -> str:
    """The local path of a job's model (``jobs.ModelFile``), fetched from the store
    if this machine does not have it yet."""
    path = os.path.join(cache_dir(), model.sha256, model.name)
    if os.path.exists(path):
        return path
    content = store.model_file_content(model.sha256)
    if content is None:
        raise ModelFileError(f"{model.name}: its bytes (sha256 {model.sha256[:16]}...) are "
                             f"not in {store.name}; submit the run again")
    if hashlib.sha256(content).hexdigest() != model.sha256:
        raise ModelFileError(f"{model.name}: the stored bytes do not match sha256 "
                             f"{model.sha256[:16]}...")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = f"{path}.part-{os.getpid()}"
    with open(part, "wb") as f:
        f.write(content)
    os.replace(part, path)
    return path
