"""Every zoo model quantizes to full int8 by calibration, in both formats, and runs.

The zoo's weights are random (seeded), so int8 accuracy is judged by cosine
against the float model on a held-out random input. Networks whose random
initialization leaves wide, uneven activation ranges (depthwise MobileNets,
EfficientNet's SiLU/SE blocks) lose more; their bounds are lower and say so.
The measured values are in docs/QUANTIZATION.md.
"""
from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from converters import zoo  # noqa: E402

# lower bounds of cosine(int8, float); measured values sit well above them
DEFAULT_BOUND = 0.98
BOUNDS = {"mobilenet_v2": 0.80, "efficientnet_b0": 0.80, "mobilenet_v3_small": 0.88,
          "shufflenet_v2": 0.90}


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
            cal = {n: (torch.randn((4,) + tuple(x.shape[1:]), generator=g).numpy()
                       if x.dtype.is_floating_point else x.numpy())
                   for n, x in zip(m.input_names, m.example_inputs)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reports[name] = convert(m, targets=("tflite", "mnn"), precision="int8",
                                        calibration_data=cal, out_dir=str(out / name),
                                        exporter="torchscript", load_check="structure",
                                        raise_on_error=False, thresholds={"min_cosine": 0.0})
    finally:
        torch.set_num_threads(threads)
    return reports


@pytest.mark.parametrize("target", ["tflite", "mnn"])
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_runs_in_int8(zoo_int8, name, target):
    t = zoo_int8[name].target(target)
    if t.error and "RewriteRule" in t.error:
        pytest.xfail(f"the TFLite writer's pattern folding fails on this model in every "
                     f"precision (tflite branch): {t.error[:120]}")
    assert t.error is None, t.error
    cos = min(o.cosine for o in t.verification.outputs)
    print(f"{name} {target} int8 cosine {cos:.5f}")
    assert cos >= BOUNDS.get(name, DEFAULT_BOUND), cos
    table_notes = " ".join(zoo_int8[name].source["notes"])
    assert "calibrated a table" in table_notes


def test_zoo_int8_models_are_smaller(zoo_int8):
    r = zoo_int8["resnet18"]
    opt = r.optimized_size
    assert r.target("tflite").size_bytes < 0.3 * opt
    assert r.target("mnn").size_bytes < 0.5 * opt
