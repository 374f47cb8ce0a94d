"""Every zoo model quantizes to full int8 by calibration, in both formats, runs, and
stays within the int8 bound of its own table's simulation (``int8_lsb_bound`` output
steps, with every kernel family of this machine: a claim that holds on AVX2, AVX-512
and ARM alike). Verification, at the real int8 gate, passes where the table keeps the
float model's outputs.

The zoo's weights are random (seeded). With random weights the depthwise and
squeeze-and-excitation nets (MobileNetV2/V3-small, EfficientNet-B0, ShuffleNetV2) lose
most of their signal at int8: their table's own simulation, ONNX Runtime running the
table as float QuantizeLinear/DequantizeLinear (the same on every CPU), is at cosine
0.78 - 0.94 of float, far below the 0.98 gate, so their verification fails, as it
should; strict xfails say so, and ``test_lossy_tables_lose_in_the_simulation_too``
shows the loss is the table's, not an engine's. Trained nets do not lose so
(docs/QUANTIZATION.md).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converters import zoo  # noqa: E402
from converters.verify import THRESHOLDS, metrics  # noqa: E402
from quant_tables import QuantTable  # noqa: E402

from .int8_bounds import assert_near_simulation, depths, simulate  # noqa: E402

CALIBRATION_SAMPLES = 16       # 13 calibrate, 3 are held out for verification
LOSSY_TABLES = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2")
LOSSY = pytest.mark.xfail(strict=True, reason=(
    "random depthwise/SE weights: the calibrated table itself keeps cosine 0.78-0.94 of "
    "float (its QDQ simulation, on any CPU), below the 0.98 int8 gate"))


@pytest.fixture(scope="module")
def zoo_int8(tmp_path_factory):
    from converters import convert

    out = tmp_path_factory.mktemp("zoo_int8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reports = {}
    try:
        for name in zoo.names():
            res = zoo.TEST_RESOLUTION if zoo.kind(name) in ("image", "segmentation") else None
            m = zoo.build(name, resolution=res, seed=0)
            g = torch.Generator().manual_seed(1)
            cal = {n: (torch.randn((CALIBRATION_SAMPLES,) + tuple(x.shape[1:]),
                                   generator=g).numpy()
                       if x.dtype.is_floating_point else x.numpy())
                   for n, x in zip(m.input_names, m.example_inputs)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reports[name] = convert(m, targets=("tflite", "mnn"), precision="int8",
                                        calibration_data=cal, out_dir=str(out / name),
                                        exporter="torchscript", raise_on_error=False)
    finally:
        torch.set_num_threads(threads)
    return reports


def _new_input(rep) -> dict:
    """A seeded input the calibration never saw, in the float inputs' shapes."""
    rng = np.random.default_rng(11)
    return {i["name"]: rng.standard_normal([d if isinstance(d, int) else 1
                                            for d in i["shape"]]).astype(np.float32)
            for i in rep.source["inputs"]}


def _simulation(rep, feeds):
    table = QuantTable.load(f"{rep.out_dir}/{rep.name}.int8.quant.json")
    return simulate(rep.optimized_path, table, feeds), table


@pytest.mark.parametrize("target", ["tflite", "mnn"])
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_runs_in_int8_near_its_simulation(zoo_int8, name, target):
    rep = zoo_int8[name]
    t = rep.target(target)
    assert t.error is None, t.error
    assert "calibrated a table" in " ".join(rep.source["notes"])
    feeds = _new_input(rep)
    sim, table = _simulation(rep, feeds)
    steps = {o: table.activations[o].scale for o in rep.source["outputs"]}
    worst = assert_near_simulation(t.path, feeds, sim, steps, depths(rep.optimized_path))
    print(f"{name} {target}: {worst} output steps from the simulation")


@pytest.mark.parametrize("target", ["tflite", "mnn"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=LOSSY) if n in LOSSY_TABLES else n
                                  for n in zoo.names()])
def test_zoo_model_passes_int8_verification(zoo_int8, name, target):
    v = zoo_int8[name].target(target).verification
    held = [s for s in v.input_sets if s.startswith("held-out calibration sample")]
    assert len(held) == 3 and not any(s.startswith("seeded") for s in v.input_sets)
    print(f"{name} {target} int8 cosine {min(o.cosine for o in v.outputs):.5f}")
    assert v.passed, v.failures


@pytest.mark.parametrize("name", LOSSY_TABLES)
def test_lossy_tables_lose_in_the_simulation_too(zoo_int8, name):
    rep = zoo_int8[name]
    feeds = _new_input(rep)
    sim, _ = _simulation(rep, feeds)
    import onnxruntime as ort

    sess = ort.InferenceSession(rep.optimized_path, providers=["CPUExecutionProvider"])
    flt = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    cos = min(metrics(flt[o], sim[o])["cosine"] for o in rep.source["outputs"])
    assert cos < THRESHOLDS["int8"].min_cosine, cos


def test_zoo_int8_models_are_smaller(zoo_int8):
    r = zoo_int8["resnet18"]
    opt = r.optimized_size
    assert r.target("tflite").size_bytes < 0.3 * opt
    assert r.target("mnn").size_bytes < 0.5 * opt
