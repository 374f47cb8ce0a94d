"""PyTorch files given as the model: TorchScript and torch.export files convert,
pickles get an error that says what to give instead (nothing is unpickled unsafely)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import edgert
from converters import convert
from converters.frontends.torch_files import torch_file_kind
from edgert.errors import InputError, ModelFileError
from converters.errors import ConversionError


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, image):
        return self.fc(torch.relu(self.conv(image)).mean((2, 3)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_files")
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 10, 10)
    paths = {"torchscript": d / "net_ts.pt", "exported_program": d / "net.pt2",
             "module": d / "net_full.pt", "state_dict": d / "net_weights.pth"}
    torch.jit.save(torch.jit.trace(net, x), str(paths["torchscript"]))
    torch.export.save(torch.export.export(net, (x,)), str(paths["exported_program"]))
    torch.save(net, str(paths["module"]))
    torch.save(net.state_dict(), str(paths["state_dict"]))
    return net, x, paths


def test_kinds_are_told_from_the_archive_without_loading_it(files):
    _, _, p = files
    assert [torch_file_kind(str(p[k])) for k in ("torchscript", "exported_program", "module",
                                                  "state_dict")] == [
        "torchscript", "exported_program", "pickle", "pickle"]


def test_torchscript_file_needs_shapes_and_then_converts(files, tmp_path):
    net, x, p = files
    with pytest.raises(InputError, match="--input-shape image="):
        convert(p["torchscript"], targets="tflite", out_dir=tmp_path)
    rep = convert(p["torchscript"], targets="tflite", input_shapes={"image": (2, 3, 10, 10)},
                  out_dir=tmp_path)
    t = rep.target("tflite")
    assert rep.name == "net_ts" and t.verification.passed
    got = edgert.load(t.path).run({"image": x.numpy()})
    np.testing.assert_allclose(next(iter(got.values())), net(x).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_exported_program_file_brings_its_example_inputs(files, tmp_path):
    net, x, p = files
    rep = convert(p["exported_program"], targets="tflite", out_dir=tmp_path)
    t = rep.target("tflite")
    assert t.verification.passed
    s = edgert.load(t.path)
    assert [tuple(i.shape) for i in s.inputs] == [tuple(x.shape)]
    got = s.run([x.numpy()])
    np.testing.assert_allclose(next(iter(got.values())), net(x).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_pickled_module_is_refused_with_what_to_do(files, tmp_path):
    _, _, p = files
    with pytest.raises(ConversionError, match="pickled nn.Module.*torch.export.save"):
        convert(p["module"], targets="tflite", out_dir=tmp_path)


def test_state_dict_is_refused_naming_its_weights(files, tmp_path):
    _, _, p = files
    with pytest.raises(ConversionError, match=r"state dict \(conv.weight, conv.bias"):
        convert(p["state_dict"], targets="tflite", out_dir=tmp_path)


@pytest.mark.parametrize("kind", ["torchscript", "exported_program"])
def test_the_runtime_says_to_convert_a_torch_file_first(files, kind):
    with pytest.raises(ModelFileError, match="edgert convert"):
        edgert.load(str(files[2][kind]))
