"""Masks take exactly their image's geometry (resize, pad, crop) and none of its photometric steps;
the dataset adds pixel labels only when some sample has a mask file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gendet.data.dataset import ImageDataset, collate_items, sample_seed
from gendet.data.manipulations.codes import SOURCE_COPIED, SOURCE_GENERATED, SOURCE_REAL, encode_source_map
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.sample import Sample
from gendet.evaluation.degradations import get_degradation


def _pattern(w: int, h: int) -> tuple[Image.Image, Image.Image]:
    """An image whose brightness spells its own mask: white blocks exactly where the mask is set."""
    m = np.repeat(np.repeat(np.random.default_rng(0).random((h // 8 + 1, w // 8 + 1)) > 0.5, 8, 0), 8, 1)[:h, :w]
    img = Image.fromarray(np.repeat((m * 255).astype(np.uint8)[..., None], 3, axis=2))
    return img, Image.fromarray((m * 255).astype(np.uint8), mode="L")


@pytest.mark.parametrize("resize", [False, True])
@pytest.mark.parametrize("wh", [(96, 72), (40, 30), (64, 64)])
def test_random_crop_resize_and_pad_follow_the_image(resize: bool, wh: tuple[int, int]) -> None:
    img, mask = _pattern(*wh)
    t = ImageTransform(Preprocess(size=48, resize=resize, align="png"), train=True)
    for seed in range(5):
        out, out_mask = t.prepare_with_mask(img, mask, np.random.default_rng(seed))
        assert out.size == out_mask.size == (48, 48)
        bright = np.asarray(out.convert("L")) > 127
        agree = (bright == (np.asarray(out_mask) > 127)).mean()
        assert agree > (0.999 if not resize else 0.93)  # resampling blurs only the block borders
        # the image part is exactly what `prepare` gives for the same RNG draws
        assert np.array_equal(np.asarray(out), np.asarray(t.prepare(img, np.random.default_rng(seed))))


def test_photometric_steps_never_touch_the_mask() -> None:
    img, mask = _pattern(80, 64)
    pp = Preprocess(size=48, align="jpeg", jpeg_quality=30)
    plain = ImageTransform(pp, train=False).prepare_with_mask(img, mask, np.random.default_rng(0))[1]
    jitter = lambda im, rng: Image.fromarray(255 - np.asarray(im))  # noqa: E731 - an extreme photometric op
    for deg in ("blur_5", "jpeg_30", "resize_64"):
        t = ImageTransform(pp, train=True, augment=jitter, degradation=get_degradation(deg))
        assert np.array_equal(np.asarray(t.prepare_with_mask(img, mask, np.random.default_rng(0))[1]),
                              np.asarray(ImageTransform(pp, train=True).prepare_with_mask(
                                  img, mask, np.random.default_rng(0))[1]))
    assert set(np.unique(np.asarray(plain))) <= {0, 255}  # NEAREST: labels stay labels


def _write(tmp: Path, name: str, arr: np.ndarray) -> Path:
    p = tmp / name
    Image.fromarray(arr).save(p)
    return p


def test_dataset_pixel_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    src = np.zeros((40, 40), dtype=np.uint8)
    src[5:15, 5:15], src[20:30, 20:35] = SOURCE_GENERATED, SOURCE_COPIED
    mask_path = tmp_path / "m.png"
    encode_source_map(src).save(mask_path)
    samples = [Sample(_write(tmp_path, "a.png", img), 1, mask=mask_path), Sample(_write(tmp_path, "r.png", img), 0),
               Sample(_write(tmp_path, "g.png", img), 1)]
    pp = Preprocess(size=40, resize=False, align="png")
    ds = ImageDataset(samples, ImageTransform(pp, train=False))
    batch = collate_items([ds[i] for i in range(3)])
    assert batch["mask"].shape == (3, 1, 40, 40) and batch["source"].shape == (3, 40, 40)
    assert torch.equal(batch["source"][0], torch.from_numpy(src.astype(np.int64)))
    assert torch.equal(batch["mask"][0, 0], torch.from_numpy((src != SOURCE_REAL).astype(np.float32)))
    assert int(batch["source"][1].max()) == SOURCE_REAL and bool((batch["source"][2] == SOURCE_GENERATED).all())
    assert batch["mask_from_file"].tolist() == [True, False, False]
    # without any mask file the items are exactly the old ones
    plain = ImageDataset(samples[1:], ImageTransform(pp, train=False))
    item = plain[0]
    assert set(item) == {"index", "path", "label", "image", "error"} and "mask" not in collate_items([item])
    assert torch.equal(item["image"], ImageTransform(pp, train=False)(Image.fromarray(img), sample_seed(0, 0, 0)))


def test_unreadable_mask_is_a_per_file_error(tmp_path: Path) -> None:
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    ds = ImageDataset([Sample(_write(tmp_path, "a.png", img), 1, mask=bad)],
                      ImageTransform(Preprocess(size=16, align="png"), train=False))
    item = ds[0]
    assert item["image"] is None and item["error"].startswith(f"mask {bad}")
