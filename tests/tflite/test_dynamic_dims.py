"""Dynamic spatial dims: strided, padded convs and pools convert without fixed sizes
(an explicit PAD then VALID is exact for any size) and the interpreter resizes; what
does need static dims fails with how to fix them."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import edgert
from converters import convert
from converters.errors import UnsupportedOpError


class Strided(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = nn.Conv2d(8, 8, 5, stride=2, padding=(2, 1))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(torch.relu(self.b(torch.relu(self.a(x)))))


class SizedLikeInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return nn.functional.interpolate(self.a(x), size=x.shape[-2:], mode="bilinear")


class Upsampled(nn.Module):
    """A decoder's x2 bilinear upsampling: a dynamic dim is resized."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return nn.functional.interpolate(self.a(x), scale_factor=2.0, mode="bilinear")


def _export(module, path, h=32, w=32):
    torch.manual_seed(0)
    torch.onnx.export(module.eval(), (torch.randn(1, 3, h, w),), str(path), dynamo=False,
                      input_names=["image"], output_names=["out"],
                      dynamic_axes={"image": {2: "h", 3: "w"}, "out": {2: "oh", 3: "ow"}})
    return str(path)


def test_strided_padded_layers_run_at_any_size(tmp_path):
    path = _export(Strided(), tmp_path / "strided.onnx")
    rep = convert(path, targets="tflite", out_dir=tmp_path)
    session = edgert.load(rep.target("tflite").path)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for h, w in ((17, 23), (32, 32), (26, 40)):
        x = np.random.default_rng(h).normal(size=(1, 3, h, w)).astype(np.float32)
        want = ref.run(None, {"image": x})[0]
        got = session.run({"image": x})["out"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("module", [SizedLikeInput, Upsampled])
def test_what_needs_static_dims_says_how_to_fix_them(tmp_path, module):
    path = _export(module(), tmp_path / "sized.onnx")
    with pytest.raises(UnsupportedOpError, match=r"--input-shape image=1x3x224x224") as info:
        convert(path, targets="tflite", out_dir=tmp_path)
    assert "Supported ops" not in str(info.value)
    rep = convert(path, targets="tflite", out_dir=tmp_path, input_shapes={"image": (1, 3, 20, 28)})
    assert rep.target("tflite").verification.passed


def test_every_engine_reports_dynamic_dims_and_runs_any_size(tmp_path):
    """The same dynamic-H/W model in the three formats: inputs (and MNN's learned outputs)
    show the dynamic dims as dynamic, random inputs pick a usable size, runs resize."""
    path = _export(Strided(), tmp_path / "strided.onnx")
    rep = convert(path, targets="tflite,mnn", out_dir=tmp_path)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for file in (rep.target("tflite").path, rep.target("mnn").path, path):
        s = edgert.load(file)
        (info,) = s.inputs
        assert info.is_dynamic and info.shape[:2] == (1, 3)
        assert not isinstance(info.shape[2], int) and not isinstance(info.shape[3], int)
        assert s.outputs[0].is_dynamic, (file, s.outputs[0].shape)
        feed = s.random_inputs()["image"]
        assert feed.shape == (1, 3, 32, 32)
        x = np.random.default_rng(5).normal(size=(1, 3, 21, 30)).astype(np.float32)
        np.testing.assert_allclose(s.run({"image": x})["out"], ref.run(None, {"image": x})[0],
                                   rtol=1e-4, atol=1e-5)


def test_every_engine_refuses_a_size_the_file_fixes(tmp_path):
    """A file converted (and verified) at 1x3x20x28 takes no other size on any engine:
    MNN resizes any input on demand and used to run 1x3x24x28 through it without a word;
    an MNN file edgert wrote records its dynamic dims, so its static ones are checked
    like LiteRT's and ONNX Runtime's."""
    path = _export(Strided(), tmp_path / "strided.onnx")
    rep = convert(path, targets="tflite,mnn", out_dir=tmp_path,
                  input_shapes={"image": (1, 3, 20, 28)})
    for file in (rep.target("tflite").path, rep.target("mnn").path):
        s = edgert.load(file)
        assert s.inputs[0].shape == (1, 3, 20, 28) and not s.inputs[0].is_dynamic
        assert s.run({"image": np.zeros((1, 3, 20, 28), np.float32)})["out"].shape[0] == 1
        for bad in ((1, 3, 24, 28), (2, 3, 20, 28)):
            with pytest.raises(edgert.InputError, match=r"expects shape 1x3x20x28, got "):
                s.run({"image": np.zeros(bad, np.float32)})
