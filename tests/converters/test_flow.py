"""``convert()`` as declared stages, typed backend options, source recognition.

Backend options are checked before any work (a misspelt or wrongly typed one is an
InputError naming it and the accepted ones); each target's backend is checked once;
every stage's wall time is in the report; the stage list is consistent (each stage
needs only what an earlier one made)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from converters import backends
from converters.api import convert
from converters.backends import BackendOptions, resolve_target_options
from converters.flow.context import ConversionContext
from converters.flow.stages import STAGES
from converters.mnn.options import MnnOptions
from converters.tflite.backend import TFLiteBackend
from converters.tflite.options import TfliteOptions
from edgert.errors import InputError, UnsupportedOptionError
from tests.converters import onnx_builders as ob

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


class _Counted:
    """A torch model that counts its forward calls: export runs it, so 0 calls means
    no work started."""

    def __new__(cls):
        import torch

        class Net(torch.nn.Module):
            calls = 0

            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)

            def forward(self, x):
                type(self).calls += 1
                return self.fc(x)

        return Net()


# -- options refused before any work ------------------------------------------------------

@pytest.mark.parametrize("given, match", [
    ({"weight_quant_asymetric": True},
     r"unknown backend option 'weight_quant_asymetric' \(did you mean "
     r"'weight_quant_asymmetric'\?\); accepted: mnn: weight_quant_asymmetric, "
     r"detect_sparse_speedup, mnn_args, mnn_symmetric, approximate_gelu, timeout_s"),
    ({"mnn": {"mnn_arg": ["--x"]}}, r"unknown mnn option 'mnn_arg' \(did you mean 'mnn_args'"),
    ({"mnn": {"mnn_args": "--fp16"}}, "mnn option mnn_args must be a list of strings, not str"),
    ({"timeout_s": "10"}, "mnn option timeout_s must be a number, not str"),
    ({"mnn_symmetric": "half"}, "mnn option mnn_symmetric='half'; accepted: auto, all, none"),
    ({"tflite_sparse_hybrid": True}, "'tflite_sparse_hybrid' is for tflite, which is not "
                                     r"among the targets \(mnn\)"),
    ({"precision": "fp16"}, "'precision' is an argument of convert"),
    ({"mnn": TfliteOptions()}, r"backend_options\['mnn'\] is a TfliteOptions"),
    ("weight_quant_asymmetric", "backend_options must be a dict"),
])
def test_a_bad_backend_option_is_refused_before_any_work(tmp_path, given, match):
    model = _Counted()
    out = tmp_path / "out"
    with pytest.raises(InputError, match=match):
        convert(model, "mnn", example_inputs=np.zeros((1, 4), np.float32), out_dir=out,
                backend_options=given)
    assert type(model).calls == 0          # nothing was exported (no forward call)
    assert not out.exists()                # and nothing written


def test_the_options_dataclasses_check_on_construction():
    with pytest.raises(InputError, match=r"unknown tflite option 'fp16_min_element' \(did you "
                                         r"mean 'fp16_min_elements'\?\); accepted: "
                                         r"fp16_min_elements, int8_min_elements, "
                                         r"tflite_sparse_hybrid"):
        TfliteOptions(fp16_min_element=4)
    with pytest.raises(InputError, match="tflite option int8_min_elements must be an "
                                         "integer, not float"):
        TfliteOptions(int8_min_elements=10.0)
    with pytest.raises(InputError, match="must be true or false, not int"):
        MnnOptions(weight_quant_asymmetric=1)
    with pytest.raises(InputError, match="at least 0"):
        TfliteOptions(fp16_min_elements=-1)
    opts = MnnOptions(mnn_args=["--a", "--b"], timeout_s=5)
    assert opts.mnn_args == ("--a", "--b") and opts.timeout_s == 5.0
    assert opts.changed() == {"mnn_args": ("--a", "--b"), "timeout_s": 5.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.timeout_s = 1.0


def test_backend_options_resolve_per_target_from_every_accepted_form():
    both = ["mnn", "tflite"]
    got = resolve_target_options({"mnn": {"mnn_args": ["--x"]}, "fp16_min_elements": 8}, both)
    assert got == {"mnn": MnnOptions(mnn_args=("--x",)),
                   "tflite": TfliteOptions(fp16_min_elements=8)}
    assert resolve_target_options([MnnOptions(timeout_s=9)], both) == {
        "mnn": MnnOptions(timeout_s=9), "tflite": TfliteOptions()}
    assert resolve_target_options(TfliteOptions(tflite_sparse_hybrid=True), ["tflite"]) == {
        "tflite": TfliteOptions(tflite_sparse_hybrid=True)}
    assert resolve_target_options(None, both) == {"mnn": MnnOptions(), "tflite": TfliteOptions()}
    # a block for a target not converted is checked, then not used
    assert resolve_target_options({"tflite": {"fp16_min_elements": 2}}, ["mnn"]) == {
        "mnn": MnnOptions()}
    with pytest.raises(InputError, match="unknown tflite option 'fp16'"):
        resolve_target_options({"tflite": {"fp16": 2}}, ["mnn"])
    with pytest.raises(InputError, match="mnn option 'mnn_args' given twice"):
        resolve_target_options({"mnn": {"mnn_args": []}, "mnn_args": []}, both)
    with pytest.raises(InputError, match="backend options for mnn given twice"):
        resolve_target_options({"mnn": MnnOptions(), "timeout_s": 3}, both)


def test_option_names_are_unique_across_backends():
    """Flat keys map to exactly one backend only while no two backends share a name."""
    seen = {}
    for target in backends.target_names():
        for name in backends.options_type(target).accepted():
            assert name not in seen, f"{name} is an option of {seen[name]} and {target}"
            seen[name] = target


def test_a_backend_refuses_another_backends_options():
    with pytest.raises(UnsupportedOptionError, match="mnn takes MnnOptions, not TfliteOptions"):
        BackendOptions(target_options=TfliteOptions()).knobs(MnnOptions)
    with pytest.raises(UnsupportedOptionError, match="quant_table must be a "
                                                     "quant_tables.QuantTable, not str"):
        BackendOptions(quant_table="table.json")


# -- check once, typed options reach the backend -------------------------------------------

class _CountingTFLite(TFLiteBackend):
    """The real TFLite backend under another target name, counting its steps."""

    name = "tflite_counted"
    calls = {"check": 0, "write": 0}

    def check(self, model, options):
        type(self).calls["check"] += 1
        return super().check(model, options)

    def write(self, checked, out_path, options, **kw):
        type(self).calls["write"] += 1
        return super().write(checked, out_path, options, **kw)


def test_each_target_is_checked_once(conv_onnx, tmp_path, monkeypatch):
    monkeypatch.setitem(backends._BACKEND_MODULES, "tflite_counted", __name__)
    monkeypatch.setitem(backends._REGISTRY, "tflite_counted", _CountingTFLite)
    _CountingTFLite.calls.update(check=0, write=0)
    report = convert(str(conv_onnx), "tflite_counted,mnn", out_dir=tmp_path,
                     load_check="structure")
    assert report.ok
    assert _CountingTFLite.calls == {"check": 1, "write": 1}
    assert report.target("tflite_counted").verification.outputs[0].cosine > 0.99999


def test_typed_and_dict_options_write_the_same_converter_flags(conv_onnx, tmp_path):
    args = []
    for i, given in enumerate([{"mnn": {"weight_quant_asymmetric": True, "mnn_args": []}},
                               MnnOptions(weight_quant_asymmetric=True)]):
        rep = convert(str(conv_onnx), "mnn", out_dir=tmp_path / str(i),
                      precision="int8_weights", backend_options=given, verify=False)
        a = rep.target("mnn").details["converter_args"]
        args.append(a[a.index("--weightQuantBits"):])
    assert args[0] == args[1] == ["--weightQuantBits", "8", "--weightQuantAsymmetric"]


# -- stages --------------------------------------------------------------------------------

def test_the_stage_list_is_consistent():
    fields = {f.name for f in dataclasses.fields(ConversionContext)}
    made = {"request", "backends"}
    names = [s.name for s in STAGES]
    assert len(names) == len(set(names))
    for stage in STAGES:
        assert set(stage.needs) <= made, f"{stage.name} needs {set(stage.needs) - made}"
        assert set(stage.makes) <= fields, f"{stage.name} makes {set(stage.makes) - fields}"
        made |= set(stage.makes)


def test_the_report_has_every_stages_wall_time(conv_onnx, tmp_path):
    report = convert(str(conv_onnx), "mnn", out_dir=tmp_path, load_check="structure")
    names = [s.name for s in STAGES]
    assert list(report.stages) == names
    assert all(v >= 0 for v in report.stages.values())
    on_disk = json.loads((tmp_path / "padconv.report.json").read_text())
    assert list(on_disk["stages"]) == names[:-1]          # written by the last stage
    assert sum(on_disk["stages"].values()) <= on_disk["seconds"] + 1e-3
    # the stages that did the work take the time: converting and verifying are not free
    assert report.stages["convert"] >= report.target("mnn").seconds - 1e-3


# -- recognition ---------------------------------------------------------------------------

def test_recognize_names_specs_and_bakes_masks():
    import torch
    import torch.nn.utils.prune as prune

    from converters.frontends.recognize import recognize

    rec = recognize("zoo:dynamic_batch_cnn")
    assert rec.name == "dynamic_batch_cnn" and rec.qat is None and rec.qdq is None
    assert rec.quantized_kind is None
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    plain = recognize(net)
    assert plain.model is net and not plain.masks_baked
    baked = recognize(net, bake_masks=True)
    assert baked.masks_baked and baked.model is not net
    w = dict(baked.model.named_parameters())["0.weight"]
    assert int((w == 0).sum()) == 6                      # half of 12 weights, now plain zeros
    assert not any(n.endswith("_orig") for n, _ in baked.model.named_parameters())


# -- callers -------------------------------------------------------------------------------

def test_cli_backend_option_is_typed_and_a_typo_exits_2(conv_onnx, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)

    def edgert(*args):
        return subprocess.run([sys.executable, "-m", "edgert", "convert", str(conv_onnx),
                               "--out", str(tmp_path / "o"), *args], capture_output=True,
                              text=True, env=env, timeout=300)

    bad = edgert("--backend-option", "mnn.timeout=5")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown mnn option 'timeout' (did you mean 'timeout_s'?)" in bad.stderr
    assert not (tmp_path / "o").exists()
    ok = edgert("--precision", "int8_weights", "--backend-option",
                "weight_quant_asymmetric=true", "--no-verify", "--json")
    assert ok.returncode == 0, ok.stderr
    assert "--weightQuantAsymmetric" in json.loads(ok.stdout)["targets"][0]["details"][
        "converter_args"]


def test_prune_model_checks_convert_options_before_pruning(conv_onnx, tmp_path):
    from converters.prune_model import prune_model

    out = tmp_path / "p"
    with pytest.raises(InputError, match=r"unknown convert option 'precison' \(did you mean "
                                         r"'precision'\?\)"):
        prune_model(str(conv_onnx), targets="mnn", out_dir=out,
                    convert_options={"precison": "fp16"})
    with pytest.raises(InputError, match="unknown mnn option 'mnn_arg'"):
        prune_model(str(conv_onnx), targets="mnn", out_dir=out,
                    convert_options={"backend_options": {"mnn": {"mnn_arg": []}}})
    assert not out.exists()
