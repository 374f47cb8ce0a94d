"""A folder of images as calibration data: preprocessed as the input expects, it gives the
table the same arrays would, through `calibrate`, `convert` and the CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from edgert.errors import InputError
from quant_tables import ImageFolder, QuantTable
from quant_tables.producers.calibrate import calibrate

from .conftest import export

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def color_onnx(tmp_path_factory):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3),
                        nn.Flatten(), nn.Linear(4 * 14 * 14, 5)).eval()
    path = str(tmp_path_factory.mktemp("img") / "color.onnx")
    return export(net, path, torch.zeros(1, 3, 16, 16))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("calib_images")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    for i, px in enumerate(pixels):
        Image.fromarray(px).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image: skipped")
    return str(folder), pixels


def _as_arrays(pixels):
    x = (pixels.astype(np.float64) / 255.0 - np.array(MEAN)) / np.array(STD)
    return x.transpose(0, 3, 1, 2).astype(np.float32)


def test_images_give_the_table_their_arrays_give(color_onnx, images):
    folder, pixels = images
    from_images = calibrate(color_onnx, ImageFolder(folder, mean=MEAN, std=STD), "minmax")
    from_arrays = calibrate(color_onnx, _as_arrays(pixels), "minmax")
    assert from_images.provenance.details["samples"] == 6
    assert set(from_images.activations) == set(from_arrays.activations)
    for name, a in from_arrays.activations.items():
        b = from_images.activations[name]
        assert b.scale == pytest.approx(a.scale, rel=1e-5) and b.zero_point == a.zero_point
    # without the model's normalization the ranges are those of other inputs
    plain = calibrate(color_onnx, folder, "minmax")
    assert plain.activations["x"].scale < 0.5 * from_arrays.activations["x"].scale


def test_int8_conversion_and_cli_from_an_image_folder(color_onnx, images, tmp_path):
    from converters import convert

    folder, _ = images
    rep = convert(color_onnx, targets="tflite", precision="int8", out_dir=tmp_path / "api",
                  calibration_data=ImageFolder(folder, mean=MEAN, std=STD))
    assert rep.target("tflite").error is None
    assert any("calibration data: images in" in n for n in rep.source["notes"])
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "table.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edgert", "calibrate", color_onnx, "--data", folder, "-o",
         str(out), "--calib-mean", *map(str, MEAN), "--calib-std", *map(str, STD)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=repo), timeout=300)
    assert proc.returncode == 0, proc.stderr
    cli = QuantTable.load(out)
    ref = calibrate(color_onnx, _as_arrays(images[1]), "minmax")
    assert cli.activations["x"].scale == pytest.approx(ref.activations["x"].scale, rel=1e-5)


def test_images_need_one_fixed_size_image_input(small_onnx, images, tmp_path):
    folder, _ = images
    table = calibrate(small_onnx, ImageFolder(folder), "minmax")   # 1x8x8 gray: resized
    assert table.provenance.details["samples"] == 6
    with pytest.raises(InputError, match="no image files"):
        calibrate(small_onnx, ImageFolder(str(tmp_path)), "minmax")
