"""Train-time augmentation ops (gendet.data.augment) and each detector's choice."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gendet.data.augment import compose, gaussian_blur, hflip, jpeg, make_augment, merge_augment
from gendet.models import create_detector


def _img(seed: int = 0, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_probability_zero_and_one() -> None:
    img = _img()
    rng = np.random.default_rng(0)
    for op in (hflip(0.0), gaussian_blur(0.0), jpeg(0.0)):
        assert op(img, rng) is img
    assert np.array_equal(_arr(hflip(1.0)(img, rng)), _arr(img)[:, ::-1])
    blurred = gaussian_blur(1.0, (2.0, 2.0))(img, rng)
    assert _arr(blurred).std() < 0.6 * _arr(img).std()  # noise is smoothed out
    assert not np.array_equal(_arr(jpeg(1.0, (30, 30))(img, rng)), _arr(img))


def test_jpeg_quality_is_drawn_from_the_range(monkeypatch) -> None:
    seen: list[int] = []
    import gendet.data.augment as aug

    def spy(img, fmt, quality=95):
        seen.append(quality)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        return Image.open(buf).convert("RGB")

    monkeypatch.setattr(aug, "encode_roundtrip", spy)
    op = jpeg(1.0, (30, 100))
    rng = np.random.default_rng(0)
    for _ in range(200):
        op(_img(size=8), rng)
    assert min(seen) >= 30 and max(seen) <= 100 and max(seen) - min(seen) > 50


def test_same_seed_same_result() -> None:
    op = make_augment(flip_prob=0.5, blur_prob=0.5, jpeg_prob=0.5)
    img = _img()
    a = [_arr(op(img, np.random.default_rng(s))) for s in range(8)]
    b = [_arr(op(img, np.random.default_rng(s))) for s in range(8)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({x.tobytes() for x in a}) > 1  # different seeds do differ


def test_blur_and_jpeg_each_fire_about_half_the_time() -> None:
    img = _img()
    rng = np.random.default_rng(1)
    n = 400
    blur = sum(not np.array_equal(_arr(gaussian_blur(0.5, (0.5, 3.0))(img, rng)), _arr(img)) for _ in range(n))
    jp = sum(not np.array_equal(_arr(jpeg(0.5)(img, rng)), _arr(img)) for _ in range(n))
    assert 0.4 < blur / n < 0.6 and 0.4 < jp / n < 0.6


def test_compose_and_make_augment() -> None:
    assert compose(None, None) is None
    assert make_augment() is None
    img = _img()
    both = compose(hflip(1.0), hflip(1.0))
    assert np.array_equal(_arr(both(img, np.random.default_rng(0))), _arr(img))


def test_bad_parameters_are_errors() -> None:
    with pytest.raises(ValueError):
        hflip(1.5)
    with pytest.raises(ValueError):
        gaussian_blur(0.5, (3.0, 1.0))
    with pytest.raises(ValueError):
        jpeg(0.5, (0, 100))
    with pytest.raises(ValueError, match="unknown augment keys"):
        merge_augment({}, {"rotate_prob": 0.5})


def test_detectors_choose_their_augmentation() -> None:
    cnn = create_detector("cnnspot", arch="resnet18", image_size=32)
    aug = cnn.config["augment"]
    assert aug["blur_prob"] == 0.5 and aug["jpeg_prob"] == 0.5 and aug["flip_prob"] == 0.5
    assert aug["blur_sigma"] == [0.0, 3.0] and aug["jpeg_quality"] == [30, 100]
    for name in ("resnet50", "spec"):
        a = create_detector(name, arch="resnet18", image_size=32).config["augment"]
        assert a["flip_prob"] == 0.5 and a["blur_prob"] == 0 and a["jpeg_prob"] == 0
    # a partial override keeps the rest of the detector's recipe
    part = create_detector("cnnspot", arch="resnet18", augment={"blur_prob": 0.1}).config["augment"]
    assert part["blur_prob"] == 0.1 and part["jpeg_prob"] == 0.5
    off = create_detector("cnnspot", arch="resnet18", augment={"flip_prob": 0, "blur_prob": 0, "jpeg_prob": 0})
    assert off.train_augment() is None


def test_ops_pickle_for_spawned_workers() -> None:
    import pickle

    op = create_detector("cnnspot", arch="resnet18", image_size=32).train_augment()
    clone = pickle.loads(pickle.dumps(op))
    img = _img()
    assert np.array_equal(_arr(op(img, np.random.default_rng(5))), _arr(clone(img, np.random.default_rng(5))))
