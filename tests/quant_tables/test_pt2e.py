"""The PT2E producer: torchao prepare/convert graphs -> a table keyed by ONNX names -> full int8.

Checked against PT2E itself: the table's scales are the ones its observers
compute, the table's QDQ simulation reproduces the converted graph, and on
digits the int8 TFLite and MNN models agree with the converted graph run in
PyTorch. Skipped without torchao (a failure under EDGERT_REQUIRE_ALL=1).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgert.errors import InputError
from converters.errors import ConversionError
from quant_tables.errors import TableSourceError

from ..conftest import require_module
from .conftest import ort_run, small_cnn

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def torchao():
    return require_module("torchao")


def _quantize(qat: bool, x, dynamic: bool = True, calibrate: bool = True):
    """small_cnn through X86InductorQuantizer: (prepared, converted or None).

    QAT uses small_cnn without its BatchNorm: convert_pt2e's Conv+BN folding of a QAT
    graph costs ~11 s (torchao exports 96 patterns); the digits test covers it.
    """
    import torch.nn as nn
    from quant_tables.producers.pt2e_torch import converted_model

    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    model = small_cnn()
    if qat:
        model[1] = nn.Identity()
        model.train()
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(model, (x,), dynamic_shapes=shapes).module()
        quantizer = xiq.X86InductorQuantizer().set_global(
            xiq.get_default_x86_inductor_quantization_config(is_qat=qat))
        prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)
        if not calibrate:
            return prepared, None
        if qat:   # a few steps so the weights move away from the float ones
            opt = torch.optim.SGD(prepared.parameters(), lr=0.01)
            for _ in range(5):
                loss = prepared(x).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            prepared = move_exported_model_to_eval(prepared)
        with torch.no_grad():
            prepared(x)
        converted = converted_model(prepared)     # convert_pt2e on a copy
    return prepared, converted


def _export(module, x, path: str, exporter: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), path, dynamo=exporter == "dynamo", input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                          **({"optimize": False} if exporter == "dynamo" else {}))
    return path


# (flow, stage the table is read from, exporter of the float twin)
CASES = [("ptq", "prepared", "dynamo"), ("qat", "converted", "torchscript")]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def pt2e(request, tmp_path_factory, cal_data):
    from quant_tables.producers.pt2e_torch import float_model, table_from_pt2e

    flow, stage, exporter = request.param
    x = torch.from_numpy(cal_data[:16])
    prepared, converted = _quantize(flow == "qat", x)
    source = prepared if stage == "prepared" else converted
    path = _export(float_model(source), x, str(tmp_path_factory.mktemp("pt2e") / "twin.onnx"),
                   exporter)
    return request.param, prepared, converted, x, path, table_from_pt2e(source, x, path)


def _observer_scales(prepared):
    """{activation node: (scale, zp)}, {layer path: per-channel scales} from the observers."""
    from quant_tables.producers.pt2e_torch import _observers

    acts, weights = {}, {}
    nodes = {n.name: n for n in prepared.graph.nodes}
    for name, obs in _observers(prepared):
        scale, zp = (t.detach().double().numpy() for t in obs.calculate_qparams())
        node = nodes[name]
        user = next(iter(node.users))
        if user.args[1:2] == (node,):         # the weight operand of a conv/linear
            path = list(user.meta["nn_module_stack"].values())[-1][0]
            weights[path] = scale
        else:
            acts[node.args[0].name] = (float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]))
    return acts, weights


def test_every_site_is_placed(pt2e):
    (flow, stage, exporter), prepared, converted, x, path, r = pt2e
    assert r.unmatched == []
    assert r.table.provenance.producer == "pt2e_torch"
    assert r.table.provenance.details["stage"] == stage
    assert "x" in r.activation_matches[next(iter(r.activation_matches))]   # the graph input
    assert sorted(r.weight_matches) == ["0.weight", "4.weight", "7.weight"]
    for name, channels in (("0.weight", 8), ("4.weight", 8), ("7.weight", 10)):
        w = r.table.weights[r.weight_matches[name]]
        assert (w.axis, len(w.scale), w.dtype, w.symmetric) == (0, channels, "int8", True)
        assert (w.quant_min, w.quant_max) == (-128, 127)
    pool = [t for t in r.table.activations if "MaxPool" in t or "max_pool" in t]
    assert pool and all(r.table.activations[t].dtype == "uint8" for t in pool)


def test_scales_equal_the_pt2e_observers(pt2e):
    (flow, stage, exporter), prepared, converted, x, path, r = pt2e
    acts, weights = _observer_scales(prepared)
    assert set(acts) == set(r.activation_matches) and len(acts) >= 4
    for node, (scale, zp) in acts.items():
        for tensor in r.activation_matches[node]:
            entry = r.table.activations[tensor]
            assert entry.scale == pytest.approx(scale, rel=1e-6), (node, tensor)
            assert entry.zero_point == zp, (node, tensor)
    assert set(weights) == {"0", "4", "7"}
    for path_, scales in weights.items():
        got = np.asarray(r.table.weights[r.weight_matches[f"{path_}.weight"]].scale)
        np.testing.assert_allclose(got, scales, rtol=1e-6)


def test_table_simulation_reproduces_the_converted_graph(pt2e):
    from quant_tables.exporters.qdq_onnx import insert_qdq
    from quant_tables.producers.pt2e_torch import pt2e_reference

    (flow, stage, exporter), prepared, converted, x, path, r = pt2e
    qdq, _ = insert_qdq(path, r.table)
    xt = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    sim = ort_run(qdq, xt.numpy())
    ref = pt2e_reference(converted, (xt,)).numpy()
    # Identical in practice (measured: every element); a float summation order that flips
    # one rounding inside may move a few. Any single scale 1.5x off moves 85-97% of them.
    assert np.mean(np.abs(sim - ref) > 1e-4) < 0.02
    assert (sim.argmax(1) == ref.argmax(1)).mean() >= 0.98


def test_prepared_and_converted_stages_give_one_table(pt2e):
    from quant_tables.producers.pt2e_torch import table_from_pt2e

    (flow, stage, exporter), prepared, converted, x, path, r = pt2e
    other = table_from_pt2e(converted if stage == "prepared" else prepared, x, path)
    assert other.table.activations.keys() == r.table.activations.keys()
    for k, a in r.table.activations.items():
        assert (other.table.activations[k].scale, other.table.activations[k].zero_point) == \
            (a.scale, a.zero_point)
    for k, w in r.table.weights.items():
        assert other.table.weights[k].scale == w.scale


def test_unobserved_prepared_graph_is_refused(cal_data):
    from quant_tables.producers.pt2e_torch import float_model

    prepared, _ = _quantize(False, torch.from_numpy(cal_data[:4]), calibrate=False)
    with pytest.raises(TableSourceError, match=r"never saw data \(activation_post_process"):
        float_model(prepared)


def test_detection_and_refusals(pt2e, small_onnx):
    from converters.quantize import trained_producer
    from quant_tables.producers.pt2e_torch import table_from_pt2e

    _, prepared, converted, x, path, r = pt2e
    assert trained_producer(prepared).kind == trained_producer(converted).kind == "PT2E"
    assert trained_producer(small_cnn()) is None
    with pytest.raises(TableSourceError, match="not a PT2E model"):
        table_from_pt2e(small_cnn(), x, path)
    other = table_from_pt2e(converted, x, small_onnx)   # another graph: weights not found
    assert any(u.endswith("(weight; no ONNX constant holds it)") for u in other.unmatched)


def test_static_batch_graph_names_the_shape_problem(cal_data, tmp_path):
    from quant_tables.producers.pt2e_torch import table_from_pt2e

    x = torch.from_numpy(cal_data[:4])
    _, converted = _quantize(False, x, dynamic=False)
    with pytest.raises(InputError, match=r"does not accept the example inputs \[\(1, 1, 8, 8\)\]"):
        table_from_pt2e(converted, x[:1], str(tmp_path / "unused.onnx"))


def test_convert_lists_what_pt2e_left_in_float(pt2e, tmp_path):
    """X86Inductor leaves the last Linear's output in float: without data, a clear error."""
    from converters import convert

    _, prepared, converted, x, path, r = pt2e
    with pytest.raises(ConversionError, match=r"lacks 1 tensor\(s\) the int8 graph needs: output;"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            convert(converted, targets=("tflite",), precision="int8", example_inputs=(x,),
                    out_dir=str(tmp_path), load_check="structure")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """PT2E QAT on digits -> int8 TFLite and MNN (examples/quantize_digits_pt2e.py)."""
    from examples import quantize_digits_pt2e

    return quantize_digits_pt2e.run(str(tmp_path_factory.mktemp("digits_pt2e")),
                                    load_check="structure")


def test_digits_int8_agrees_with_the_pt2e_graph(digits):
    acc, agree = digits.accuracy, digits.agreement
    assert acc["float (PyTorch)"] >= 0.97
    for target in ("int8 tflite", "int8 mnn"):
        assert agree[target] >= 0.99, (target, agree)
        assert acc["float (PyTorch)"] - acc[target] <= 0.005, (target, acc)
    notes = " ".join(digits.report.source["notes"])
    assert "PT2E: 7 activation and 5 weight" in notes
    assert "calibrated 1 tensor(s)" in notes       # only the last Linear's float output
    t = digits.report.target("tflite")
    assert t.details["int8"]["float_ops"] == [] and t.op_counts["QUANTIZE"] == 1


def test_digits_table_holds_the_converted_graph_parameters(digits):
    """Every Q/DQ constant of the converted graph is in the table convert used."""
    from quant_tables import QuantTable
    from quant_tables.producers.pt2e_torch import _op, _params, table_from_pt2e

    conv = digits.converted
    r = table_from_pt2e(conv, torch.from_numpy(digits.x_train[:1]), digits.paths["optimized"])
    assert r.unmatched == []
    final = QuantTable.load(digits.paths["table"])
    assert final.provenance.producer == "pt2e_torch"
    checked = 0
    for n in conv.graph.nodes:
        if _op(n) == "quantize_per_tensor":
            scale, zp = float(n.args[1]), int(n.args[2])
            for tensor in r.activation_matches[n.args[0].name]:
                assert (final.activations[tensor].scale, final.activations[tensor].zero_point) \
                    == (pytest.approx(scale, rel=1e-9), zp), tensor
                checked += 1
        elif _op(n) == "dequantize_per_channel":
            user = next(iter(n.users))
            layer = list(user.meta["nn_module_stack"].values())[-1][0]
            w = final.weights[r.weight_matches[f"{layer}.weight"]]
            np.testing.assert_allclose(w.scale, _params(conv, n)[0], rtol=1e-9)
            checked += 1
    assert checked >= 12


SPEC_FILE = '''
import torch, torch.nn as nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    g = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    q = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(g.module(), q)
    prepared(x)
    return convert_pt2e(prepared), (x[:1],)
'''


def test_cli_converts_a_pt2e_spec(tmp_path, cal_data, capsys):
    """`edgert convert file.py:build --precision int8`: the spec's PT2E graph brings its table."""
    import json

    from edgert.cli import main
    from quant_tables import QuantTable

    (tmp_path / "pt2e_model.py").write_text(SPEC_FILE)
    np.save(tmp_path / "cal.npy", cal_data[:16])
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["convert", f"{tmp_path / 'pt2e_model.py'}:build", "--to", "tflite",
                     "--precision", "int8", "--calibration-data", str(tmp_path / "cal.npy"),
                     "--out", str(out), "--no-isolated-check", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["name"] == "pt2e_model"      # the file, not its generic factory
    assert any(n.startswith("PT2E: 3 activation and 2 weight") for n in report["source"]["notes"])
    table = QuantTable.load(out / "pt2e_model.int8.quant.json")
    assert table.provenance.producer == "pt2e_torch"
    assert sorted(table.weights) == ["0.weight", "3.weight"]
