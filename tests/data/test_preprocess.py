"""Preprocess / ImageTransform: geometry, format alignment, determinism."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gendet.data import ImageTransform, Preprocess
from gendet.data.preprocess import (
    align_format,
    apply_geometry,
    encode_roundtrip,
    normalize,
    to_pixels,
    to_tensor,
)


def _img(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    # smooth content + noise, so JPEG is lossy but not pathological
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None]
    arr = base + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("resize", [True, False])
@pytest.mark.parametrize("wh", [(1, 1), (5, 3), (20, 20), (32, 32), (300, 200), (50, 200), (200, 33)])
def test_geometry_gives_square_of_size(resize: bool, wh: tuple[int, int]) -> None:
    pp = Preprocess(size=32, resize=resize)
    for rng in (None, np.random.default_rng(1)):
        out = apply_geometry(_img(*wh), pp, rng)
        assert out.size == (32, 32)


def test_resize_false_pads_tiny_image_and_keeps_pixels() -> None:
    pp = Preprocess(size=32, resize=False)
    small = _img(10, 12)
    out = np.asarray(apply_geometry(small, pp, None))
    assert out.shape == (32, 32, 3)
    # the original sits unchanged in the centre (no resampling), the rest is padding
    top, left = (32 - 12) // 2, (32 - 10) // 2
    assert np.array_equal(out[top : top + 12, left : left + 10], np.asarray(small))


def test_resize_false_crops_large_image_without_resampling() -> None:
    pp = Preprocess(size=32, resize=False)
    big = _img(100, 80)
    out = np.asarray(apply_geometry(big, pp, None))
    assert np.array_equal(out, np.asarray(big)[24:56, 34:66])  # exact centre crop


def test_resize_true_keeps_whole_scene_of_shorter_side() -> None:
    pp = Preprocess(size=32, resize=True)
    # a left/right split image: after resize + centre crop both halves must remain visible
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, 32:] = 255
    out = np.asarray(apply_geometry(Image.fromarray(arr), pp, None))
    assert out[:, :8].mean() < 10 and out[:, -8:].mean() > 245


def test_align_none_png_jpeg() -> None:
    img = _img(32, 32)
    ref = np.asarray(img)
    assert align_format(img, Preprocess(size=32, align="none")) is img
    assert np.array_equal(np.asarray(align_format(img, Preprocess(size=32, align="png"))), ref)
    jpeg = np.asarray(align_format(img, Preprocess(size=32, align="jpeg", jpeg_quality=75)), dtype=np.int16)
    err = np.abs(jpeg - ref).mean()
    assert 0.2 < err < 12  # lossy but faithful
    # lower quality loses more
    worse = np.asarray(encode_roundtrip(img, "jpeg", 20), dtype=np.int16)
    assert np.abs(worse - ref).mean() > err


def test_preprocess_validation_and_roundtrip() -> None:
    with pytest.raises(ValueError, match="align"):
        Preprocess(align="webp")
    with pytest.raises(ValueError, match="size"):
        Preprocess(size=4)
    pp = Preprocess(size=48, resize=False, align="png", jpeg_quality=80)
    assert Preprocess.from_dict(pp.to_dict()) == pp


def test_to_tensor_normalises() -> None:
    pp = Preprocess(size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    t = to_tensor(Image.new("RGB", (8, 8), (255, 0, 255)), pp)
    assert t.shape == (3, 8, 8) and t.dtype == torch.float32
    assert torch.allclose(t[:, 0, 0], torch.tensor([1.0, -1.0, 1.0]))


def test_normalize_is_the_float_arithmetic_bit_for_bit() -> None:
    """Every uint8 value on every channel, one image or a batch, into a buffer or not: what decoders used to send
    (numpy float32 / 255, then (x - mean) / std) to the last bit, so scores do not move."""
    pp = Preprocess(size=8)
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(3, 0)  # (3, 16, 16), all 256 values
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in (pp.mean, pp.std))
    legacy = (torch.from_numpy(values.astype(np.float32) / 255.0) - mean) / std
    pixels = torch.from_numpy(values)
    assert torch.equal(normalize(pixels, pp), legacy)
    batch = pixels.expand(5, 3, 16, 16)
    out = torch.full((5, 3, 16, 16), float("nan"))
    assert normalize(batch, pp, out) is out and torch.equal(out, legacy.expand(5, 3, 16, 16))
    assert pixels.dtype == torch.uint8 and torch.equal(pixels, torch.from_numpy(values))  # input untouched


def test_transform_is_normalize_of_its_pixels() -> None:
    pp = Preprocess(size=32, crops=4)
    tf = ImageTransform(pp, train=False)
    img = _img(120, 90)
    pixels = tf.pixels(img, np.random.default_rng(0))
    assert pixels.dtype == torch.uint8 and pixels.shape == (4, 3, 32, 32)
    assert torch.equal(tf(img, np.random.default_rng(0)), normalize(pixels, pp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps a read-only view of PIL's buffer
        first = to_pixels(img)[:, 0, 0]
    assert torch.equal(first, torch.tensor(img.getpixel((0, 0)), dtype=torch.uint8))


def _jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 5, (img.height, img.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_transform_deterministic_for_same_seed() -> None:
    pp = Preprocess(size=32)
    tf = ImageTransform(pp, train=True, augment=_jitter)
    img = _img(120, 90)
    a = tf(img, np.random.default_rng(7))
    b = tf(img, np.random.default_rng(7))
    c = tf(img, np.random.default_rng(8))
    assert a.shape == (3, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_eval_transform_ignores_augment_and_rng() -> None:
    pp = Preprocess(size=32)
    tf = ImageTransform(pp, train=False, augment=_jitter)
    img = _img(120, 90)
    assert torch.equal(tf(img, np.random.default_rng(1)), tf(img, np.random.default_rng(2)))


def test_degradation_applied_after_alignment_and_resized_back() -> None:
    pp = Preprocess(size=32, align="png")
    calls = []

    def shrink(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        calls.append(img.size)
        return img.resize((16, 16))

    out = ImageTransform(pp, degradation=shrink).prepare(_img(64, 64), np.random.default_rng(0))
    assert calls == [(32, 32)]
    assert out.size == (32, 32)
