"""Image preprocessing for classification models, defined once for Python and the app.

The Android demo's Java core (``android_demo/core``) implements the same steps
with the same arithmetic, and a shared test vector holds the two to 1e-6:

1. **crop**: ``"stretch"`` keeps the whole image; ``"center_crop"`` cuts the
   largest centered window with the target's aspect ratio (integer maths, so
   both languages pick the same pixels).
2. **resize**: bilinear with half-pixel centers and clamped edges (OpenCV's
   ``INTER_LINEAR``, PyTorch's ``align_corners=False`` without antialias), in
   float64 on 0..255 values.
3. **color**: ``RGB``, ``BGR`` or ``GRAY`` (``0.299 R + 0.587 G + 0.114 B``).
4. **normalize**: ``(v * pixel_scale - mean[c]) / std[c]``, then float32.
5. **layout**: ``NCHW`` -> ``[1, C, H, W]``, ``NHWC`` -> ``[1, H, W, C]``.
6. **quantize** (integer inputs only): ``edgert.tensors.QuantParams.quantize``,
   the same rounding (half to even) the Session uses for float feeds.

Images are read without Pillow for PPM/PGM (binary ``P6``/``P5``, 8 bit): the
format is a header plus raw bytes, so the reader is a few lines of numpy and
the shared test vector needs no decoder whose output could differ between
Python and Java. Every other format (PNG, JPEG, ...) goes through Pillow when
it is installed (matplotlib, in ``edgert[farm]``, already depends on it); a
hand-written PNG/JPEG decoder would be code to maintain for no gain. Importing
this module costs numpy only.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from edgert.errors import InputError
from edgert.tensors import QuantParams

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff")
LAYOUTS = ("NCHW", "NHWC")
COLORS = ("RGB", "BGR", "GRAY")
RESIZES = ("stretch", "center_crop")
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass
class PreprocessSpec:
    """What turns an image into one model input (the manifest's ``preprocess`` entry)."""

    height: int
    width: int
    channels: int = 3
    layout: str = "NCHW"
    color: str = "RGB"
    resize: str = "stretch"
    pixel_scale: float = 1.0 / 255.0
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    input: str = ""
    dtype: str = "float32"
    quantization: Optional[QuantParams] = field(default=None)

    def __post_init__(self) -> None:
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.height < 1 or self.width < 1:
            problems.append(f"size {self.height}x{self.width} must be positive")
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3, got {self.channels}")
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} not in {LAYOUTS}")
        if self.color not in COLORS:
            problems.append(f"color {self.color!r} not in {COLORS}")
        elif (self.color == "GRAY") != (self.channels == 1):
            problems.append(f"color {self.color} does not fit {self.channels} channel(s)")
        if self.resize not in RESIZES:
            problems.append(f"resize {self.resize!r} not in {RESIZES}")
        for name, vals in (("mean", self.mean), ("std", self.std)):
            if len(vals) not in (1, self.channels):
                problems.append(f"{name} needs 1 or {self.channels} values, got {len(vals)}")
        if any(s == 0 for s in self.std):
            problems.append("std must not be 0")
        if not self.pixel_scale > 0:
            problems.append("pixel_scale must be positive")
        if problems:
            raise InputError("preprocessing: " + "; ".join(problems))

    def per_channel(self, values: Tuple[float, ...]) -> np.ndarray:
        return np.asarray(values * self.channels if len(values) == 1 else values, np.float64)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        """The inverse of ``to_dict`` (a manifest's ``preprocess`` entry)."""
        d = dict(d)
        q = d.pop("quantization", None)
        quant = QuantParams(tuple(q["scale"]), tuple(q["zero_point"]), q.get("axis")) if q else None
        return cls(**d, quantization=quant)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["quantization"] = self.quantization.to_dict() if self.quantization else None
        return d


def crop_box(img_h: int, img_w: int, spec: PreprocessSpec) -> Tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` of the window that gets resized."""
    if spec.resize == "stretch":
        return 0, 0, img_h, img_w
    th, tw = spec.height, spec.width
    if img_w * th > img_h * tw:  # wider than the target: cut the sides
        w = max(1, (img_h * tw + th // 2) // th)
        return 0, (img_w - w) // 2, img_h, w
    h = max(1, (img_w * th + tw // 2) // tw)
    return (img_h - h) // 2, 0, h, img_w


def _axis(n_out: int, n_in: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = n_in / n_out
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    s = np.clip(s, 0.0, n_in - 1)
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, s - i0


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of an ``H x W x C`` array (half-pixel centers), float64 out."""
    src = np.asarray(img, dtype=np.float64)
    y0, y1, fy = _axis(out_h, src.shape[0])
    x0, x1, fx = _axis(out_w, src.shape[1])
    fx = fx[None, :, None]
    top = src[y0][:, x0] * (1.0 - fx) + src[y0][:, x1] * fx
    bottom = src[y1][:, x0] * (1.0 - fx) + src[y1][:, x1] * fx
    fy = fy[:, None, None]
    return top * (1.0 - fy) + bottom * fy


def preprocess(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """An ``H x W x 3`` uint8 RGB image -> the model input (float32, or quantized ints)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(f"expected an HxWx3 uint8 RGB image, got shape {img.shape} "
                         f"dtype {img.dtype}")
    y0, x0, h, w = crop_box(img.shape[0], img.shape[1], spec)
    px = resize_bilinear(img[y0:y0 + h, x0:x0 + w], spec.height, spec.width)
    if spec.color == "BGR":
        px = px[:, :, ::-1]
    elif spec.color == "GRAY":
        r, g, b = px[:, :, 0], px[:, :, 1], px[:, :, 2]
        px = (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b)[:, :, None]
    x = ((px * spec.pixel_scale - spec.per_channel(spec.mean))
         / spec.per_channel(spec.std)).astype(np.float32)
    x = x.transpose(2, 0, 1)[None] if spec.layout == "NCHW" else x[None]
    x = np.ascontiguousarray(x)
    if spec.quantization is not None and np.issubdtype(np.dtype(spec.dtype), np.integer):
        return spec.quantization.quantize(x, np.dtype(spec.dtype))
    return x


# -- reading and writing images ------------------------------------------------------

def _ppm_tokens(data: bytes, count: int) -> Tuple[list, int]:
    """The first ``count`` whitespace-separated header tokens (``#`` comments skipped)."""
    tokens, i, n = [], 0, len(data)
    while len(tokens) < count:
        while i < n and data[i:i + 1].isspace():
            i += 1
        if i < n and data[i:i + 1] == b"#":
            while i < n and data[i:i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while j < n and not data[j:j + 1].isspace():
            j += 1
        if j == i:
            raise InputError("truncated PPM/PGM header")
        tokens.append(data[i:j])
        i = j
    return tokens, i + 1  # one whitespace byte ends the header


def read_ppm(path: str) -> np.ndarray:
    """A binary PPM (``P6``) or PGM (``P5``) file with maxval 255 -> ``H x W x 3`` uint8 RGB."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        (magic, w, h, maxval), start = _ppm_tokens(data, 4)
        w, h, maxval = int(w), int(h), int(maxval)
    except ValueError:
        raise InputError(f"{path}: not a binary PPM/PGM file") from None
    if magic not in (b"P6", b"P5"):
        raise InputError(f"{path}: PPM magic {magic!r} unsupported (binary P6/P5 only)")
    if maxval != 255 or w < 1 or h < 1:
        raise InputError(f"{path}: only 8-bit images (maxval 255) of positive size, "
                         f"got {w}x{h} maxval {maxval}")
    ch = 3 if magic == b"P6" else 1
    need = w * h * ch
    if len(data) - start < need:
        raise InputError(f"{path}: pixel data truncated ({len(data) - start} of {need} bytes)")
    px = np.frombuffer(data, np.uint8, need, start).reshape(h, w, ch)
    return np.repeat(px, 3, axis=2) if ch == 1 else px.copy()


def write_ppm(path: str, img: np.ndarray) -> None:
    """Write an ``H x W x 3`` uint8 image as binary PPM (``P6``)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(f"write_ppm needs HxWx3 uint8, got {img.shape} {img.dtype}")
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (img.shape[1], img.shape[0]))
        f.write(np.ascontiguousarray(img).tobytes())


def read_image(path: str) -> np.ndarray:
    """Any image -> ``H x W x 3`` uint8 RGB: PPM/PGM built in, the rest through Pillow."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such image file")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic in (b"P6", b"P5"):
        return read_ppm(path)
    try:
        from PIL import Image  # type: ignore
    except ImportError:
        raise InputError(f"{path}: reading this format needs Pillow (pip install pillow); "
                         f"binary PPM/PGM needs nothing") from None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except OSError as exc:
        raise InputError(f"{path}: Pillow cannot read it ({exc})") from None


def spec_for_input(shape: Sequence[object], *, layout: Optional[str] = None,
                   color: str = "RGB", **kwargs) -> PreprocessSpec:
    """A spec fitted to a rank-4 image input shape; the layout is inferred when not given."""
    if len(shape) != 4:
        raise InputError(f"an image input must have rank 4, got shape {list(shape)}")
    if layout is None:
        layout = infer_layout(shape)
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
    dims = [shape[c_axis], shape[h_axis], shape[w_axis]]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise InputError(f"image input shape {list(shape)} has dynamic C/H/W; "
                         f"export the model with a fixed input size")
    channels, height, width = (int(d) for d in dims)
    if channels not in (1, 3):
        raise InputError(f"image input shape {list(shape)} read as {layout} has {channels} "
                         f"channels; only 1 (gray) or 3 (color) are supported")
    return PreprocessSpec(height=height, width=width, channels=channels, layout=layout,
                          color="GRAY" if channels == 1 else color, **kwargs)


def infer_layout(shape: Sequence[object]) -> str:
    """NCHW when dim 1 looks like channels and dim 3 does not; NHWC the other way round."""
    c1, c3 = shape[1] in (1, 3), shape[3] in (1, 3)
    if c3 and not c1:
        return "NHWC"
    if c1 and not c3:
        return "NCHW"
    raise InputError(f"cannot tell NCHW from NHWC for input shape {list(shape)}; "
                     f"pass the layout explicitly")
