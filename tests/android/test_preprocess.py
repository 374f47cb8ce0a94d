"""edgert.preprocess / edgert.postprocess: the Python side of the app's image pipeline."""
from __future__ import annotations

import numpy as np
import pytest

import edgert
from edgert.errors import InputError
from edgert.postprocess import looks_like_probabilities, softmax, top_k
from edgert.preprocess import (PreprocessSpec, crop_box, infer_layout, preprocess, read_image,
                               read_ppm, resize_bilinear, spec_for_input, write_ppm)
from edgert.tensors import QuantParams


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(11, 17, 3), dtype=np.uint8)


@pytest.mark.parametrize("out_hw", [(5, 7), (23, 40), (11, 17), (1, 1)])
def test_resize_matches_torch_bilinear_half_pixel(image, out_hw):
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None], size=out_hw,
        mode="bilinear", align_corners=False, antialias=False)[0].permute(1, 2, 0).numpy()
    got = resize_bilinear(image, *out_hw)
    assert got.shape == out_hw + (3,)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_pipeline_values_by_hand():
    # 2x2 image -> 1x1: the sample point sits in the middle, so the value is the mean.
    img = np.array([[[0, 10, 200], [40, 50, 0]], [[80, 90, 100], [120, 130, 60]]], np.uint8)
    spec = PreprocessSpec(height=1, width=1, layout="NCHW", color="RGB", pixel_scale=1.0,
                          mean=(10, 20, 30), std=(2, 4, 5))
    x = preprocess(img, spec)
    assert x.dtype == np.float32 and x.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(x.reshape(-1), [(60 - 10) / 2, (70 - 20) / 4, (90 - 30) / 5])
    bgr = preprocess(img, PreprocessSpec(height=2, width=2, layout="NHWC", color="BGR",
                                         pixel_scale=1.0))
    np.testing.assert_array_equal(bgr[0], img[:, :, ::-1].astype(np.float32))
    gray = preprocess(img, PreprocessSpec(height=2, width=2, channels=1, color="GRAY",
                                          pixel_scale=1.0))
    assert gray.shape == (1, 1, 2, 2)
    assert gray[0, 0, 0, 0] == pytest.approx(0.299 * 0 + 0.587 * 10 + 0.114 * 200, abs=1e-4)


def test_layouts_are_transposes(image):
    a = preprocess(image, PreprocessSpec(height=6, width=9, layout="NCHW"))
    b = preprocess(image, PreprocessSpec(height=6, width=9, layout="NHWC"))
    assert a.shape == (1, 3, 6, 9) and b.shape == (1, 6, 9, 3)
    np.testing.assert_array_equal(a[0].transpose(1, 2, 0), b[0])
    assert a.min() >= 0 and a.max() <= 1  # default pixel_scale 1/255, mean 0, std 1


@pytest.mark.parametrize("img_hw,target,box", [
    ((9, 13), (6, 6), (0, 2, 9, 9)),     # wider than the target: cut the sides
    ((9, 13), (3, 8), (2, 0, 5, 13)),    # narrower: cut top and bottom
    ((10, 20), (5, 10), (0, 0, 10, 20)),  # same aspect: whole image
])
def test_center_crop_box(img_hw, target, box):
    spec = PreprocessSpec(height=target[0], width=target[1], resize="center_crop")
    assert crop_box(*img_hw, spec) == box
    assert crop_box(*img_hw, PreprocessSpec(height=1, width=1)) == (0, 0) + img_hw


def test_quantized_input_is_what_the_session_makes_of_the_floats(image, model_files):
    sess = edgert.load(model_files["tflite_int8"], check="structure")
    info = sess.inputs[0]
    spec = spec_for_input(info.shape, layout="NHWC", dtype="int8", mean=(0.5,), std=(0.5,),
                          quantization=info.quantization)
    q = preprocess(image, spec)
    f = preprocess(image, PreprocessSpec(**{**spec.to_dict(), "quantization": None,
                                            "dtype": "float32"}))
    assert q.dtype == np.int8 and q.shape == (1, 4, 4, 3)
    np.testing.assert_array_equal(q, info.quantization.quantize(f, np.int8))
    # Both feed the real model to the same answer: the Session quantizes floats the same way.
    np.testing.assert_array_equal(sess.run(q, raw=True)["scores"], sess.run(f, raw=True)["scores"])


def test_spec_round_trips_and_rejects_nonsense():
    spec = PreprocessSpec(height=4, width=5, layout="NHWC", dtype="uint8",
                          quantization=QuantParams((0.5,), (3,)))
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    for bad, words in [(dict(channels=2), "channels"), (dict(std=(0.0,)), "std must not be 0"),
                       (dict(mean=(1, 2)), "mean needs 1 or 3"), (dict(color="GRAY"), "GRAY"),
                       (dict(layout="CHW"), "layout"), (dict(resize="crop"), "resize")]:
        with pytest.raises(InputError, match=words):
            PreprocessSpec(height=2, width=2, **bad)


def test_spec_for_input_shapes():
    assert spec_for_input([1, 3, 224, 160]).layout == "NCHW"
    s = spec_for_input([1, 32, 48, 1])
    assert (s.layout, s.color, s.channels, s.height, s.width) == ("NHWC", "GRAY", 1, 32, 48)
    with pytest.raises(InputError, match="NCHW from NHWC"):
        infer_layout([1, 3, 3, 3])
    with pytest.raises(InputError, match="dynamic"):
        spec_for_input([1, 3, None, 224])
    with pytest.raises(InputError, match="rank 4"):
        spec_for_input([1, 64])
    with pytest.raises(InputError, match="4 channels"):
        spec_for_input([1, 4, 8, 8], layout="NCHW")


def test_ppm_round_trip_gray_and_bad_files(tmp_path, image):
    p = tmp_path / "a.ppm"
    write_ppm(str(p), image)
    np.testing.assert_array_equal(read_ppm(str(p)), image)
    g = tmp_path / "g.pgm"
    g.write_bytes(b"P5 # comment\n3 1 255\n" + bytes([0, 128, 255]))
    np.testing.assert_array_equal(read_image(str(g))[0, :, 1], [0, 128, 255])
    (tmp_path / "t.ppm").write_bytes(b"P6\n4 4\n255\n" + bytes(10))
    with pytest.raises(InputError, match="truncated"):
        read_ppm(str(tmp_path / "t.ppm"))
    (tmp_path / "x.ppm").write_bytes(b"P3\n1 1\n255\n0 0 0\n")
    with pytest.raises(InputError, match="P6/P5"):
        read_ppm(str(tmp_path / "x.ppm"))
    with pytest.raises(InputError, match="no such image"):
        read_image(str(tmp_path / "missing.png"))


def test_png_through_pillow(tmp_path, image):
    pil = pytest.importorskip("PIL.Image")
    pil.fromarray(image).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "a.png")), image)


def test_softmax_top_k_and_probability_check():
    s = np.array([1.0, 3.0, 3.0, -2.0], np.float32)
    p = softmax(s)
    e = np.exp([1.0, 3.0, 3.0, -2.0])
    np.testing.assert_allclose(p, e / e.sum(), rtol=1e-6)
    assert [i for i, _ in top_k(s, 3)] == [1, 2, 0]  # tie: lower index first
    assert softmax(np.array([1000.0, 0.0]))[0] == pytest.approx(1.0)  # no overflow
    assert looks_like_probabilities(p) and not looks_like_probabilities(s)
