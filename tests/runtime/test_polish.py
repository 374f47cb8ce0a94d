"""Runtime polish as a user meets it (issue 19): one MNN load per engine instance,
dynamic dims reported alike by every engine, layout mistakes named before the engine
sees them, top-k that agrees with argmax, MNN quantization in `edgert info`, and the
bench's word on int8 speed."""
from __future__ import annotations

import numpy as np
import pytest

import edgert


def test_mnn_file_is_loaded_once_per_session(models, monkeypatch):
    """The module is parsed once in this process (the isolated check's child is apart);
    counted on MNN's own loader, which still does the work."""
    import MNN

    real = MNN.nn.load_module_from_file
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(MNN.nn, "load_module_from_file", counting)
    s = edgert.load(models["mnn"], check="structure")
    x = np.ones((1, 3, 16, 16), np.float32)
    assert s.run(x)["logits"].shape == (1, 10)
    assert calls == [models["mnn"]]
