"""The six GenImage Task 2 degradations: names, sizes, strength, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.evaluation.degradations import DEGRADATIONS, get_degradation

NAMES = ["resize_112", "resize_64", "jpeg_65", "jpeg_30", "blur_3", "blur_5"]


def _photo_like(size: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus texture, so JPEG and blur both have something to remove."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([200 * xx, 150 * yy + 50, 100 + 80 * np.sin(6 * xx + 3 * yy)], axis=-1)
    arr = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def test_exactly_the_six_names():
    assert list(DEGRADATIONS) == NAMES
    with pytest.raises(ValueError, match="resize_112, resize_64, jpeg_65, jpeg_30, blur_3, blur_5"):
        get_degradation("jpeg_50")


@pytest.mark.parametrize(
    ("side", "expected"),
    [(224, {"resize_112": 112, "resize_64": 64}), (32, {"resize_112": 16, "resize_64": 9}),
     (12, {"resize_112": 8, "resize_64": 8})],
)
def test_resize_is_relative_to_224(side, expected):
    img = _photo_like(side)
    for name, want in expected.items():
        out = get_degradation(name)(img, np.random.default_rng(0))
        assert out.size == (want, want) and out.mode == "RGB"
    rect = get_degradation("resize_64")(_photo_like(448).crop((0, 0, 448, 224)), np.random.default_rng(0))
    assert rect.size == (128, 64)  # aspect ratio kept


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_rng_independent(name):
    img = _photo_like(64, seed=1)
    a = np.asarray(get_degradation(name)(img, np.random.default_rng(0)))
    b = np.asarray(get_degradation(name)(img, np.random.default_rng(123)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.asarray(img)) or a.shape != np.asarray(img).shape  # it does change the image


def _err(name: str, img: Image.Image) -> float:
    out = get_degradation(name)(img, np.random.default_rng(0))
    return float(np.abs(np.asarray(out, np.float64) - np.asarray(img, np.float64)).mean())


def test_jpeg_and_blur_keep_size_and_stronger_is_worse():
    img = _photo_like(64)
    for name in ("jpeg_65", "jpeg_30", "blur_3", "blur_5"):
        assert get_degradation(name)(img, np.random.default_rng(0)).size == img.size
    assert 0 < _err("jpeg_65", img) < _err("jpeg_30", img)
    assert 0 < _err("blur_3", img) < _err("blur_5", img)


@pytest.mark.parametrize(("sigma", "width"), [(3, 224), (5, 224), (3, 112), (5, 112)])
def test_blur_sigma_is_the_standard_deviation_at_224_px_scaled_below(sigma, width):
    # The edge spread of a step edge is the Gaussian's CDF; its derivative has std sigma.
    arr = np.zeros((16, width, 3), np.uint8)
    arr[:, width // 2:] = 255
    out = np.asarray(get_degradation(f"blur_{sigma}")(Image.fromarray(arr), np.random.default_rng(0)), np.float64)
    d = np.diff(out[8, :, 0])
    x = np.arange(len(d)) + 0.5
    p = d / d.sum()
    mu = (p * x).sum()
    assert np.sqrt((p * (x - mu) ** 2).sum()) == pytest.approx(sigma * width / 224, abs=0.1)


@pytest.mark.parametrize("name", NAMES)
def test_inside_image_transform_back_to_model_size(name):
    pp = Preprocess(size=32, align="jpeg")
    t = ImageTransform(pp, train=False, degradation=get_degradation(name))
    x = t(_photo_like(50), np.random.default_rng(0))
    clean = ImageTransform(pp, train=False)(_photo_like(50), np.random.default_rng(0))
    assert x.shape == (3, 32, 32)
    assert not np.allclose(x.numpy(), clean.numpy())
