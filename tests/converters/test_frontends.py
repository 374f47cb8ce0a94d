"""Front-ends: torch and ONNX sources, and the errors users can cause."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from converters import convert
from converters.frontends import load_source, parse_input_shapes
from edgert.errors import InputError, ModelFileError
from converters.errors import ConversionError
from tests.converters import onnx_builders as ob


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, features, bias):
        return torch.relu(self.fc(features)) + bias


class DataDependent(torch.nn.Module):
    """Python control flow on a tensor value: torch.export cannot capture it."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


@pytest.fixture(scope="module")
def relu_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "dead.onnx"
    onnx.save(ob.dead_code(np.random.default_rng(0)), str(path))
    return path


def test_torch_model_without_example_inputs_says_what_to_give():
    with pytest.raises(InputError, match=r"needs example inputs.*--input-shape"):
        load_source(TwoInputs())


def test_torch_model_from_input_shapes_names_forward_arguments():
    src = load_source(TwoInputs(), input_shapes={"features": (2, 6), "bias": (2, 3)},
                      exporter="torchscript")
    assert src.input_names == ["features", "bias"]
    assert src.example_inputs["features"].shape == (2, 6)
    with pytest.raises(InputError, match=r"unknown input\(s\) \['x'\]; model inputs: "
                                         r"\['features', 'bias'\]"):
        load_source(TwoInputs(), input_shapes={"x": (2, 6), "bias": (2, 3)})


def test_onnx_input_shape_for_unknown_input_is_named(relu_onnx):
    with pytest.raises(InputError, match=r"unknown input\(s\) \['image'\]; model inputs: \['x'\]"):
        load_source(str(relu_onnx), input_shapes=parse_input_shapes(["image=1x3x8x8"]))


def test_onnx_input_shape_conflicting_with_a_fixed_dim(relu_onnx):
    with pytest.raises(InputError, match="dim 0 is fixed at 2 in the model"):
        load_source(str(relu_onnx), input_shapes={"x": (3, 5)})


@pytest.mark.parametrize("content,match", [
    (b"hello, I am a text file\n", "not an ONNX model|not a readable ONNX model"),
    (b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64, "TFLite"),
    (b"PK\x03\x04" + b"\x00" * 64, "archive"),
])
def test_non_onnx_files_are_rejected_with_the_reason(tmp_path, content, match):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=match):
        load_source(str(path))


def test_missing_file_and_bad_spec(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_source(str(tmp_path / "nope.onnx"))
    with pytest.raises(ConversionError, match="cannot import 'no_such_pkg_xyz.models'"):
        load_source("no_such_pkg_xyz.models:build")


def test_onnx_with_external_data_converts(tmp_path):
    rng = np.random.default_rng(1)
    proto = ob.pad_conv(rng)
    onnx.save(proto, str(tmp_path / "ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 400
    report = convert(str(tmp_path / "ext.onnx"), "mnn", out_dir=tmp_path / "out",
                     load_check="structure")
    assert report.ok and report.source["kind"] == "onnx"
    assert report.target("mnn").verification.outputs[0].cosine >= 0.99999
    assert report.passes.ops_after == {"Conv": 1}        # the Pad folded into the Conv


def test_dynamic_batch_on_a_static_onnx_model():
    src = load_source(ob.dead_code(np.random.default_rng(2)), dynamic_batch=True)
    (name, shape, dtype), = src.input_specs()
    assert name == "x" and shape == ("batch", 5)
    assert any("batch dim 2 made dynamic" in n for n in src.notes)


def test_dynamo_failure_falls_back_to_torchscript_and_says_so():
    src = load_source(DataDependent(), example_inputs=(torch.ones(2, 3),))
    assert src.exporter == "torchscript"
    assert any("dynamo exporter failed" in n for n in src.notes)
    out = src.run_reference({"x": np.ones((2, 3), np.float32)})
    assert np.array_equal(out["output"], np.full((2, 3), 2.0, np.float32))


def test_python_file_factory_spec(tmp_path):
    code = ("import torch\n"
            "class Net(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.conv = torch.nn.Conv2d(3, 4, 3)\n"
            "    def forward(self, image):\n"
            "        return torch.relu(self.conv(image))\n"
            "def build():\n"
            "    torch.manual_seed(0)\n"
            "    return Net(), (torch.randn(1, 3, 8, 8),)\n")
    (tmp_path / "mynet.py").write_text(code)
    src = load_source(f"{tmp_path / 'mynet.py'}:build", exporter="torchscript")
    assert src.kind == "torch" and src.name == "mynet" and src.input_names == ["image"]
    assert src.example_inputs["image"].shape == (1, 3, 8, 8)
    with pytest.raises(ConversionError, match="has no attribute 'missing'"):
        load_source(f"{tmp_path / 'mynet.py'}:missing")


def test_parse_input_shapes_errors():
    assert parse_input_shapes(["x=1x3x224x224", "m=Nx16"]) == {"x": (1, 3, 224, 224),
                                                               "m": ("n", 16)}
    with pytest.raises(InputError, match="write NAME=1x3x224x224"):
        parse_input_shapes(["1x3x224x224"])
    with pytest.raises(InputError, match="dims must be at least 1"):
        parse_input_shapes(["x=0x3"])


class MaskedTokens(torch.nn.Module):
    """Token ids and an int64 attention mask compared with a constant: what tokenizers
    hand a text model."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask=None):
        h = self.emb(input_ids).masked_fill((attention_mask == 0).unsqueeze(-1), 0.0)
        return self.fc(h.sum(1))


def test_example_inputs_by_name_and_int64_masks(tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    rep = convert(MaskedTokens().eval(), targets="tflite,mnn", out_dir=tmp_path,
                  example_inputs={"attention_mask": mask, "input_ids": ids})
    assert rep.source["inputs"][0]["name"] == "input_ids"       # forward's order
    assert [i["dtype"] for i in rep.source["inputs"]] == ["int64", "int64"]
    for t in rep.targets:     # TFLite: the int64 mask meets an int64 constant in EQUAL
        assert t.error is None and t.verification.passed, (t.target, t.error)
    with pytest.raises(InputError, match=r"not parameters of forward\(\)"):
        convert(MaskedTokens().eval(), targets="tflite", out_dir=tmp_path,
                example_inputs={"ids": ids})


def test_a_source_that_cannot_run_the_verification_inputs_says_so(tmp_path):
    """Dynamic dims in the file, a Reshape that only fits the traced size: the reference
    run fails on the seeded inputs, and the error says what to do instead of a traceback."""
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "baked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "s"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [3, 4])])
    path = tmp_path / "baked.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(InputError, match=r"fails on the verification inputs \(x 1x32\).*"
                                         r"--verify-inputs"):
        convert(str(path), targets="mnn", out_dir=tmp_path / "o")


class NamedOutputs(torch.nn.Module):
    """Returns a dict with a namedtuple in it, as detection and HF-style heads do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        from collections import namedtuple

        y = self.fc(x)
        box = namedtuple("Box", ["xy", "wh"])(y[:, :2], y[:, 1:].exp())
        return {"logits": y, "box": box}


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_outputs_take_the_names_the_module_returns(tmp_path, exporter):
    """A dict's keys and a namedtuple's fields name the outputs (they were output_0..2),
    and the converted files keep them."""
    torch.manual_seed(0)
    src = load_source(NamedOutputs(), (torch.randn(2, 4),), exporter=exporter)
    assert src.output_names == ["logits", "box_xy", "box_wh"]
    rep = convert(NamedOutputs().eval(), "tflite", example_inputs=(torch.randn(2, 4),),
                  out_dir=tmp_path, exporter=exporter)
    assert [o.name for o in rep.target("tflite").verification.outputs] == \
        ["logits", "box_xy", "box_wh"]


def test_nested_example_inputs_say_how_to_pass_them():
    class Pair(torch.nn.Module):
        def forward(self, pair):
            return pair[0] + pair[1]

    with pytest.raises(InputError, match="wrap the model in a module whose forward takes"):
        load_source(Pair(), ((torch.ones(2), torch.ones(2)),))


def test_converting_and_pruning_leave_the_modules_train_flags_as_they_were(tmp_path):
    """Exporting needs eval mode; a model converted or pruned mid-training must come back
    training (BatchNorm updating statistics, Dropout dropping), and a submodule the user
    froze in eval mode stays so."""
    from converters.prune_model import prune_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.Dropout(0.5))
    net.train()
    net[1].eval()                                   # a frozen BatchNorm
    before = [m.training for m in net.modules()]
    x = torch.randn(1, 3, 8, 8)
    rep = convert(net, "tflite", example_inputs=(x,), out_dir=tmp_path / "c")
    assert rep.target("tflite").verification.passed
    assert [m.training for m in net.modules()] == before
    run = prune_model(net, pattern="channel", sparsity=0.5, example_inputs=(x,),
                      out_dir=tmp_path / "p", targets="tflite")
    assert run.conversion.target("tflite").verification.passed
    assert [m.training for m in net.modules()] == before


def test_a_dynamo_failure_is_told_by_its_cause_without_colour_codes():
    """torch.onnx's first line is the same for every failure, with terminal colour codes."""
    from converters.frontends.torch_export import exporter_reason

    exc = RuntimeError(
        "Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of "
        "exporting the model to ONNX. Next steps:\n- Modify the model code\n\n"
        "## Exception summary\n\n<class 'torch._dynamo.exc.Unsupported'>: Dynamic control "
        "flow is not supported at the moment.\n\nmore")
    assert exporter_reason(exc) == ("Unsupported: Dynamic control flow is not supported at "
                                    "the moment.")
    assert exporter_reason(RuntimeError("\x1b[91mboom\x1b[0m\nsecond")) == "boom"
    assert exporter_reason(RuntimeError("")) == "RuntimeError('')"


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_module_returning_its_input_or_one_tensor_twice_keeps_every_output(exporter,
                                                                             tmp_path):
    """``return x, conv(x)``: the dynamo exporter renamed the input to ``output_0`` and the
    reference ended in a KeyError. ``return y, y``: the files had one output where the
    module has two. Each output now has its own value and name, in every file."""
    import torch

    import edgert
    from converters import convert

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)
            self.register_buffer("anchors", torch.arange(12.0).reshape(3, 4))

        def forward(self, x):
            y = self.conv(x)
            return x, y, y, self.anchors

    x = torch.randn(1, 3, 8, 8)
    rep = convert(Both().eval(), "mnn,tflite", example_inputs=(x,), out_dir=tmp_path,
                  exporter=exporter, name="both")
    names = ["output_0", "output_1", "output_2", "output_3"]
    assert rep.source["outputs"] == names
    assert [i["name"] for i in rep.source["inputs"]] == ["x"]
    for t in rep.targets:
        assert t.error is None and t.verification.passed, (t.target, t.error)
        out = edgert.load(t.path).run({"x": x.numpy()})
        assert list(out) == names, (t.target, list(out))
        np.testing.assert_array_equal(out["output_0"], x.numpy())
        np.testing.assert_array_equal(out["output_1"], out["output_2"])
        np.testing.assert_array_equal(out["output_3"], np.arange(12.0).reshape(3, 4))
