"""Shipped real photos, photo-level splits and crops (gendet.data.real_photos)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gendet.data.real_photos import (
    ASSETS_DIR,
    SHORT_SIDE,
    downscale_short_side,
    grid_boxes,
    list_photos,
    load_photo,
    load_real_crops,
    photo_split,
    real_crops_with_sources,
    sha256_file,
)


def _manifest() -> list[dict]:
    with open(ASSETS_DIR / "MANIFEST.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_shipped_assets_match_manifest():
    rows = _manifest()
    assert len(rows) == 27
    pngs = sorted(p.name for p in ASSETS_DIR.glob("*.png"))
    assert pngs == sorted(r["file"] for r in rows)  # one row per shipped photo, nothing unlisted
    total = 0
    for r in rows:
        path = ASSETS_DIR / r["file"]
        assert sha256_file(path) == r["sha256"], r["file"]
        assert int(r["bytes"]) == path.stat().st_size
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert min(im.size) == SHORT_SIDE and im.size == (int(r["width"]), int(r["height"]))
        assert r["license"] in {"CC0-1.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL-2+"}
        assert r["photographer"] and r["debian_package"] and len(r["original_sha256"]) == 64
        total += path.stat().st_size
    assert total < 6_000_000
    attribution = (ASSETS_DIR / "ATTRIBUTION.md").read_text()
    for r in rows:
        assert r["file"] in attribution and r["photographer"] in attribution


def test_shipped_assets_reproduce_from_originals(real_dir):
    """The tool's processing, applied to an original, gives the shipped bytes' pixels."""
    row = next(r for r in _manifest() if r["file"] == "mate_GreenMeadow.png")  # smallest original: fast
    src = real_dir / row["original_file"]
    assert sha256_file(src) == row["original_sha256"]
    with Image.open(src) as im:
        ours = np.asarray(downscale_short_side(im.convert("RGB")))
    shipped = np.asarray(Image.open(ASSETS_DIR / row["file"]).convert("RGB"))
    assert np.array_equal(ours, shipped)


def test_split_by_photo_is_disjoint_and_deterministic():
    photos = list_photos()
    a = photo_split(photos, seed=0)
    shuffled = photos[:]
    random.Random(1).shuffle(shuffled)
    b = photo_split(shuffled, seed=0)
    assert a == b  # independent of input order
    assert not set(a["train"]) & set(a["val"])
    assert set(a["train"]) | set(a["val"]) == set(photos)
    assert len(a["val"]) == round(0.3 * len(photos))
    c = photo_split(photos, seed=1)
    assert c["val"] != a["val"]  # the seed matters
    with pytest.raises(ValueError):
        photo_split(photos[:1])


def test_crops_shape_and_sources_follow_the_split():
    split = photo_split(list_photos())
    seen = {}
    for s in ("train", "val"):
        crops, sources = real_crops_with_sources(s, 64)
        assert crops.dtype.is_floating_point is False and crops.shape[1:] == (3, 64, 64)
        assert len(sources) == crops.shape[0] > 0
        assert set(sources) == {p.name for p in split[s]}
        seen[s] = set(sources)
    assert not seen["train"] & seen["val"]
    # Crops are exact pixels of their photo (no resampling): check one.
    crops, sources = real_crops_with_sources("val", 64)
    arr = load_photo(ASSETS_DIR / sources[0])
    x, y = grid_boxes(arr.shape[1], arr.shape[0], 64)[0]
    assert np.array_equal(crops[0].permute(1, 2, 0).numpy(), arr[y : y + 64, x : x + 64])
    assert load_real_crops("val", 64).equal(crops)


def test_crops_per_photo_subsets_deterministically():
    a, sa = real_crops_with_sources("train", 32, crops_per_photo=3, seed=0)
    b, _ = real_crops_with_sources("train", 32, crops_per_photo=3, seed=0)
    assert a.equal(b)
    assert max(sa.count(n) for n in set(sa)) == 3
    with pytest.raises(ValueError):
        load_real_crops("test", 32)


def test_grid_cells_do_not_overlap():
    boxes = grid_boxes(410, 256, 64)
    assert len(boxes) == 6 * 4
    assert len(set(boxes)) == len(boxes)
    xs = sorted({x for x, _ in boxes})
    assert all(b - a == 64 for a, b in zip(xs, xs[1:], strict=False))


def test_user_real_dir_is_downscaled_and_deduplicated(tmp_path: Path):
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (600, 900, 3), dtype=np.uint8))
    big.save(tmp_path / "a.jpg", quality=90)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "copy_of_a.jpg").write_bytes((tmp_path / "a.jpg").read_bytes())
    Image.fromarray(rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    photos = list_photos(tmp_path)
    assert [p.name for p in photos] == ["a.jpg", "b.png"]  # byte-identical copy dropped
    assert load_photo(tmp_path / "a.jpg").shape == (SHORT_SIDE, 384, 3)
    assert load_photo(tmp_path / "b.png").shape == (274, SHORT_SIDE, 3)  # portrait: width is the short side
    split = photo_split(photos, val_fraction=0.5)
    crops, sources = real_crops_with_sources("val", 64, real_dir=tmp_path, val_fraction=0.5)
    assert set(sources) == {p.name for p in split["val"]} and crops.shape[0] == 4 * (6 if "a.jpg" in sources else 4)
    with pytest.raises(FileNotFoundError):
        list_photos(tmp_path / "missing")
