"""The QAT producer: fake-quant sites land on the right ONNX tensors, checked by simulation.

The strongest check there is: the table, written back into the float ONNX model
as QDQ and run by ONNX Runtime, must reproduce PyTorch's own fake-quant output.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from quant_tables import QuantTable
from quant_tables.errors import TableSourceError
from quant_tables.exporters.qdq_onnx import insert_qdq
from quant_tables.producers.qat_torch import fake_quant_reference, float_model, table_from_qat

from .conftest import export, ort_run

torch = pytest.importorskip("torch")


def residual_net():
    import torch.nn as nn
    import torch.ao.quantization as tq

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
            self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
            self.add = torch.ao.nn.quantized.FloatFunctional()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = self.quant(x)
            y = self.relu1(self.bn1(self.conv1(x)))
            z = self.relu2(self.bn2(self.conv2(y)))
            x = torch.flatten(self.pool(self.add.add(y, z)), 1)
            return self.dequant(self.fc(x))
    return Net()


def prepare(backend: str, seed: int = 0):
    import torch.ao.quantization as tq

    torch.manual_seed(seed)
    m = residual_net().train()
    m.qconfig = tq.get_default_qat_qconfig(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = tq.fuse_modules_qat(m, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]])
        p = tq.prepare_qat(m)
    opt = torch.optim.SGD(p.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(15):
        x = torch.randn(16, 1, 8, 8, generator=g)
        loss = p(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return p


@pytest.fixture(scope="module", params=["x86", "qnnpack"])
def qat(request, tmp_path_factory):
    p = prepare(request.param)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    path = export(float_model(p), str(tmp_path_factory.mktemp("qat") / "float.onnx"), x)
    return request.param, p, x, path, table_from_qat(p, x, path)


def test_every_site_is_placed(qat):
    backend, p, x, path, r = qat
    assert r.unmatched == []
    assert set(r.activation_matches) == {"quant", "conv1", "conv2", "add", "fc"}
    assert r.activation_matches["quant"] == ["x"] and r.activation_matches["fc"] == ["y"]
    assert set(r.weight_matches) == {"conv1", "conv2", "fc"}
    pool = [t for t in r.table.activations if "MaxPool" in t]
    assert pool and r.table.activations[pool[0]].source.startswith("shared:")


def test_entries_carry_the_fake_quant_parameters(qat):
    backend, p, x, path, r = qat
    fq = p.conv1.weight_fake_quant
    w = r.table.weights[r.weight_matches["conv1"]]
    np.testing.assert_allclose(np.asarray(w.scale), fq.scale.double().numpy())
    per_channel = backend == "x86"
    assert (w.axis == 0) == per_channel and len(w.scale) == (8 if per_channel else 1)
    assert w.dtype == "int8" and w.symmetric and (w.quant_min, w.quant_max) == (-128, 127)
    a = r.table.activations[r.activation_matches["conv1"][0]]
    assert a.scale == pytest.approx(float(p.conv1.activation_post_process.scale))
    assert a.dtype == "uint8"
    assert a.qrange == ((0, 127) if backend == "x86" else (0, 255))   # reduce_range on x86


def assert_simulation_reproduces_fake_quant(p, path, table):
    """The table written back as QDQ and run by ONNX Runtime gives PyTorch's own
    fake-quant output, up to one output step (float summation order can flip a rounding)."""
    qdq, _ = insert_qdq(path, table)
    xt = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    sim = ort_run(qdq, xt.numpy())
    ref = fake_quant_reference(p, (xt,)).numpy()
    step = table.activations["y"].scale
    assert np.abs(sim - ref).max() <= step * 1.01
    assert np.mean(np.abs(sim - ref) > 1e-6) < 0.02
    assert (sim.argmax(1) == ref.argmax(1)).mean() >= 0.98


def test_table_simulation_reproduces_pytorch_fake_quant(qat):
    backend, p, x, path, r = qat
    assert_simulation_reproduces_fake_quant(p, path, r.table)


def test_float_model_computes_the_float_function(qat):
    backend, p, x, path, r = qat
    import copy
    from torch.ao.quantization import disable_fake_quant, disable_observer

    sim = copy.deepcopy(p).eval()
    sim.apply(disable_fake_quant)
    sim.apply(disable_observer)
    with torch.no_grad():
        np.testing.assert_allclose(ort_run(path, x.numpy()), sim(x).numpy(), atol=1e-4)


def test_sites_the_graph_lacks_are_reported(qat, small_onnx):
    backend, p, x, path, r = qat
    other = table_from_qat(p, x, small_onnx)   # a different model with the same input
    assert any(u.startswith("conv1 (activation") for u in other.unmatched)
    assert any(u.startswith("fc (weight") for u in other.unmatched)
    assert other.activation_matches.get("quant") == ["x"]


def test_model_without_fake_quant_is_refused(small_onnx):
    import torch.nn as nn

    with pytest.raises(TableSourceError, match="no fake-quant modules"):
        table_from_qat(nn.Sequential(nn.Flatten()), torch.zeros(1, 1, 8, 8), small_onnx)


def test_residual_qat_model_converts_and_matches_its_own_simulation(tmp_path):
    """Eager QAT with a FloatFunctional add followed by a plain ReLU and average pooling:
    eager mode puts no fake-quant after them (they keep their input's parameters), so
    the table gets those entries from their inputs; the int8 model is verified against
    PyTorch's own simulation, and agrees with it."""
    import warnings

    import torch
    from torch import nn
    from torch.ao.nn.quantized import FloatFunctional
    from torch.ao.quantization import (DeQuantStub, QuantStub, fuse_modules_qat,
                                       get_default_qat_qconfig, prepare_qat)

    from converters import convert
    from quant_tables.producers.qat_torch import fake_quant_reference

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.dequant = QuantStub(), DeQuantStub()
            self.stem, self.bn, self.relu = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), \
                nn.ReLU()
            self.conv, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.add, self.relu2 = FloatFunctional(), nn.ReLU()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 5)

        def forward(self, x):
            x = self.relu(self.bn(self.stem(self.quant(x))))
            x = self.relu2(self.add.add(x, self.bn2(self.conv(x))))
            return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))

    torch.manual_seed(0)
    m = Net().train()
    fuse_modules_qat(m, [["stem", "bn", "relu"], ["conv", "bn2"]], inplace=True)
    m.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(m, inplace=True)
    with torch.no_grad():
        for _ in range(8):                      # let the observers see data
            m(torch.randn(4, 3, 12, 12))
    m.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(m, targets="tflite", example_inputs=(torch.randn(1, 3, 12, 12),),
                      precision="int8", out_dir=tmp_path, load_check="structure")
    t = rep.target("tflite")
    assert t.error is None and t.verification.passed, t.error
    assert any("PyTorch's own simulation of the QAT model" in n for n in rep.source["notes"])
    assert t.details["int8"]["float_ops"] == []
    import edgert
    x = torch.randn(6, 3, 12, 12)
    sim = fake_quant_reference(m, (x,)).numpy()
    s = edgert.load(t.path)
    got = np.concatenate([next(iter(s.run({"x": x[i:i + 1].numpy()}).values()))
                          for i in range(6)])
    # within the int8 bound, in output steps, of PyTorch's own simulation
    from converters.verify import int8_lsb_bound

    from .int8_bounds import depths

    name = rep.source["outputs"][0]
    step = QuantTable.load(tmp_path / f"{rep.name}.int8.quant.json").activations[name].scale
    depth = depths(rep.optimized_path)[name]
    dist = float(np.max(np.abs(got - sim))) / step
    print(f"\nQAT int8 TFLite vs PyTorch's simulation: {dist:.1f} steps (bound "
          f"{int8_lsb_bound(depth):.0f})")
    assert dist <= int8_lsb_bound(depth)


def test_a_qat_model_converts_to_int8_unless_told_otherwise(tmp_path):
    """Precision follows the source: fake-quant modules mean int8; fp32 when asked."""
    from converters import convert

    p = prepare("x86").eval()
    x = (torch.randn(1, 1, 8, 8),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(p, targets="tflite", example_inputs=x, out_dir=tmp_path / "auto",
                      verify=False)
        flt = convert(p, targets="tflite", example_inputs=x, out_dir=tmp_path / "fp32",
                      precision="fp32", verify=False)
    assert rep.precision["chosen"] == "int8" and "a QAT model" in rep.precision["why"]
    assert rep.target("tflite").details["int8"]["float_ops"] == []
    assert flt.precision["chosen"] == "fp32" and "int8" not in flt.target("tflite").details


# -- FX graph mode (prepare_qat_fx) -------------------------------------------------------

def fx_net():
    """No stubs, a plain ``+`` and a shared ReLU: what FX graph mode is used for."""
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            z = self.bn2(self.conv2(y))
            return self.fc(torch.flatten(self.pool(self.relu(y + z)), 1))
    return Net()


def fx_prepared(backend: str, folder):
    """(prepared, example, float ONNX path, table) of ``fx_net`` after prepare_qat_fx and
    a few steps of training."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    torch.manual_seed(0)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = prepare_qat_fx(fx_net().train(), get_default_qat_qconfig_mapping(backend),
                           (x[:1],))
    opt = torch.optim.SGD(p.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(15):
        loss = p(torch.randn(16, 1, 8, 8, generator=g)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    p.eval()
    path = export(float_model(p), str(folder / "float.onnx"), x)
    return p, x, path, table_from_qat(p, x, path)


@pytest.fixture(scope="module", params=["x86", "qnnpack"])
def fx_qat(request, tmp_path_factory):
    return (request.param, *fx_prepared(request.param, tmp_path_factory.mktemp("fxqat")))


def test_fx_qat_sites_are_named_by_the_graph_and_all_placed(fx_qat):
    """FX puts fake-quants in the graph as modules of their own (one shared by a value
    and the pool/flatten after it); each call is a site, named by the node it reads."""
    backend, p, x, path, r = fx_qat
    assert r.unmatched == []
    # FX fuses add + relu: the fake-quant sits after the relu (node relu_1)
    assert {"x", "conv1", "conv2", "relu_1", "fc"} <= set(r.activation_matches)
    assert r.activation_matches["x"] == ["x"] and r.activation_matches["fc"] == ["y"]
    assert set(r.weight_matches) == {"conv1", "conv2", "fc"}
    # the shared fake-quant after the last ReLU also covers the pool and the flatten
    shared = [n for n in r.activation_matches if n in ("pool", "flatten")]
    assert shared, sorted(r.activation_matches)


def test_fx_qat_float_model_has_no_fake_quant_left(fx_qat):
    from torch.ao.quantization import FakeQuantizeBase

    backend, p, x, path, r = fx_qat
    twin = float_model(p)
    assert not any(isinstance(m, FakeQuantizeBase) for m in twin.modules())
    assert all(isinstance(m, FakeQuantizeBase) for n, m in p.named_modules()
               if n.startswith("activation_post_process_") and "." not in n)


def test_fx_qat_table_simulation_reproduces_pytorch_fake_quant(fx_qat):
    backend, p, x, path, r = fx_qat
    assert_simulation_reproduces_fake_quant(p, path, r.table)


def test_fx_qat_model_converts_to_int8_for_both_targets(tmp_path):
    """It used to end in an AttributeError from inside torch (the float twin broke the
    fake-quants FX calls from its graph); the add fused with its ReLU gets the ReLU's
    entry (it used to ask for calibration data)."""
    from converters import convert

    p, x, path, r = fx_prepared("qnnpack", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = convert(p, targets="tflite,mnn", example_inputs=(x[:1],), out_dir=tmp_path,
                      load_check="structure")
    assert rep.precision["chosen"] == "int8"
    for t in rep.targets:
        assert t.error is None and t.verification.passed, (t.target, t.error)
        assert t.verification.reference == "PyTorch's own simulation of the QAT model"


def test_an_eager_module_used_twice_gives_both_of_its_values_the_entry(tmp_path):
    """One Conv module applied twice: its fake-quant quantizes both outputs with one
    scale; both ONNX tensors get the entry (only the last call's did)."""
    import torch.ao.quantization as tq
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.dequant(self.conv2(self.conv2(self.conv1(self.quant(x)))))

    torch.manual_seed(0)
    m = Net().train()
    m.qconfig = tq.get_default_qat_qconfig("qnnpack")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = tq.prepare_qat(m)
    with torch.no_grad():
        for _ in range(4):
            p(torch.randn(4, 1, 6, 6))
    p.eval()
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    path = export(float_model(p), str(tmp_path / "twice.onnx"), x)
    r = table_from_qat(p, x, path)
    assert r.unmatched == []
    assert {"conv2", "conv2 (call 2)"} <= set(r.activation_matches)
    first, second = r.activation_matches["conv2"][0], r.activation_matches["conv2 (call 2)"][0]
    assert first != second
    assert r.table.activations[first].scale == r.table.activations[second].scale == \
        pytest.approx(float(p.conv2.activation_post_process.scale))


def test_a_model_torch_already_converted_to_int8_is_refused_saying_what_to_pass(tmp_path):
    """convert_fx's output (int8 kernels) exported as a QDQ graph the backends refused
    node by node; quantize_dynamic's failed inside torch.onnx. Both are refused up front."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    from converters import convert
    from converters.errors import ConversionError

    x = torch.randn(1, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = prepare_qat_fx(fx_net().train(), get_default_qat_qconfig_mapping("qnnpack"), (x,))
        p(torch.randn(8, 1, 8, 8))
        q = convert_fx(p.eval())
        dyn = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
            {torch.nn.Linear}, dtype=torch.qint8)
    with pytest.raises(ConversionError, match=r"already converted to torch.ao int8 kernels "
                       r"\(conv1 \(torch.ao.nn.intrinsic.quantized.ConvReLU2d\).*prepare_qat_fx"):
        convert(q, "tflite", example_inputs=(x,), out_dir=tmp_path / "q")
    with pytest.raises(ConversionError, match=r"torch.ao.nn.quantized.dynamic.Linear.*"
                                              r"precision='int8_weights'"):
        convert(dyn, "tflite", example_inputs=(x,), out_dir=tmp_path / "d")
    assert not (tmp_path / "q").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("mode", ["fx", "eager"])
def test_a_calibrated_ptq_model_converts_to_int8_with_its_observers_ranges(mode, tmp_path):
    """prepare_fx / prepare, then calibration: the observers' ranges are the table (they
    were exported as float and ignored), and the int8 files are verified against the
    model's own simulation (each observer as fake quantization with its parameters)."""
    import torch.ao.quantization as tq
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    from converters import convert

    x = torch.randn(1, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "fx":
            p = prepare_fx(fx_net().eval(), get_default_qconfig_mapping("qnnpack"), (x,))
        else:
            m = residual_net().eval()
            m.qconfig = tq.get_default_qconfig("qnnpack")
            p = tq.prepare(tq.fuse_modules(m, [["conv1", "bn1", "relu1"],
                                               ["conv2", "bn2", "relu2"]]))
        for _ in range(8):
            p(torch.randn(8, 1, 8, 8, generator=g))
        rep = convert(p, "tflite,mnn", example_inputs=(x,), out_dir=tmp_path)
    assert rep.precision["chosen"] == "int8" and "a PTQ model" in rep.precision["why"]
    assert any(n.startswith("PTQ: ") and "unmatched" not in n for n in rep.source["notes"])
    for t in rep.targets:
        assert t.error is None and t.verification.passed, (t.target, t.error)
        assert t.verification.reference == "PyTorch's own simulation of the PTQ model"
    from quant_tables import QuantTable
    table = QuantTable.load(tmp_path / f"{rep.name}.int8.quant.json")
    obs = next(m for n, m in p.named_modules() if n.endswith("activation_post_process_0")
               or n == "quant.activation_post_process")
    scale = float(obs.calculate_qparams()[0])
    assert table.activations["x"].scale == pytest.approx(scale)
