"""Real photographs for the local benchmark: the shipped set, a user's folder, splits and crops.

gendet ships 27 freely licensed camera photos (``gendet/assets/real``, see its
``MANIFEST.csv`` and ``ATTRIBUTION.md``), downscaled so the shorter side is
256 px and stored as lossless PNG. A user's own folder (``--real-dir``) goes
through the very same downscale on the fly, so both sources give crops of the
same scale.

Splits are made **by source photo**: every crop of a photo lands in the same
split, so no scene leaks between a detector's training and test data.
Crops are the non-overlapping cells of a centred grid, never resized, so they
keep the photos' pixel statistics.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gendet.data.decode import decode_image
from gendet.lazy_import import file_sha256

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets" / "real"
SHORT_SIDE = 256
# Reduce by an integer box filter first, then LANCZOS for the last <= 3x: same look as a
# pure LANCZOS at a fraction of the cost on 20-megapixel inputs (Pillow's reducing_gap).
REDUCING_GAP = 3.0
SPLITS = ("train", "val")
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def downscale_short_side(img: Image.Image, short_side: int = SHORT_SIDE) -> Image.Image:
    """Resize so the shorter side is `short_side` (LANCZOS with reducing_gap); never upscales.

    Upscaling would add interpolation traces to the *real* class, so smaller photos
    are kept as they are.
    """
    w, h = img.size
    s = min(w, h)
    if s <= short_side:
        return img
    scale = short_side / s
    size = (short_side, round(h * scale)) if w == s else (round(w * scale), short_side)
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


sha256_file = file_sha256


def list_photos(real_dir: str | os.PathLike | None = None) -> list[Path]:
    """The photos to use, sorted by name: the shipped set by default, else image files under `real_dir`.

    Byte-identical duplicates in a user's folder are dropped (a copy of a photo
    under another name would otherwise put one scene in two splits).
    """
    if real_dir is None:
        manifest = ASSETS_DIR / "MANIFEST.csv"
        if not manifest.is_file():
            raise FileNotFoundError(f"shipped real photos missing: {manifest} (reinstall gendet)")
        with open(manifest, newline="") as fh:
            photos = [ASSETS_DIR / row["file"] for row in csv.DictReader(fh)]
        missing = [p.name for p in photos if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"shipped real photos missing from {ASSETS_DIR}: {missing}")
        return sorted(photos, key=lambda p: p.name)
    root = Path(real_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--real-dir is not a folder: {root}")
    found = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS and p.is_file()),
        key=lambda p: (p.name, str(p)),
    )
    seen: set[str] = set()
    photos = []
    for p in found:
        digest = sha256_file(p)
        if digest not in seen:
            seen.add(digest)
            photos.append(p)
    if not photos:
        raise FileNotFoundError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) under {root}")
    return photos


def photo_split(photos: list[Path], seed: int = 0, val_fraction: float = 0.3) -> dict[str, list[Path]]:
    """Deterministic split by source photo: {"train": [...], "val": [...]}, no photo in both.

    Photos are ordered by a seeded hash of their file name (independent of the
    input order and of the folder they sit in), and the first
    round(val_fraction * n) go to val (at least one each when n >= 2).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    uniq = sorted(set(map(Path, photos)), key=lambda p: (p.name, str(p)))
    if len(uniq) < 2:
        raise ValueError(f"need at least 2 photos to split by photo, got {len(uniq)}")
    names = [p.name for p in uniq]
    if len(set(names)) != len(names):
        raise ValueError("photo file names must be unique (they identify the source photo)")

    def key(p: Path) -> str:
        return hashlib.sha256(f"{seed}:{p.name}".encode()).hexdigest()

    order = sorted(uniq, key=key)
    n_val = min(len(order) - 1, max(1, round(val_fraction * len(order))))
    return {
        "train": sorted(order[n_val:], key=lambda p: p.name),
        "val": sorted(order[:n_val], key=lambda p: p.name),
    }


@functools.lru_cache(maxsize=128)
def _photo_array(path: str, mtime_ns: int) -> np.ndarray:
    """Decoded, downscaled photo as HxWx3 uint8 (cached per file version)."""
    return np.asarray(downscale_short_side(decode_image(path)), dtype=np.uint8)


def load_photo(path: str | os.PathLike) -> np.ndarray:
    """One photo decoded (EXIF orientation applied) and downscaled to the benchmark scale."""
    p = Path(path)
    return _photo_array(str(p), p.stat().st_mtime_ns)


def grid_boxes(width: int, height: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the non-overlapping size x size cells of a grid centred in the image."""
    nx, ny = width // size, height // size
    x0, y0 = (width - nx * size) // 2, (height - ny * size) // 2
    return [(x0 + i * size, y0 + j * size) for j in range(ny) for i in range(nx)]


def real_crops_with_sources(
    split: str,
    size: int = 64,
    real_dir: str | os.PathLike | None = None,
    seed: int = 0,
    crops_per_photo: int | None = None,
    val_fraction: float = 0.3,
) -> tuple[torch.Tensor, list[str]]:
    """Crops of the `split` photos as uint8 (N,3,size,size) and, per crop, its source photo's file name.

    All grid cells are used unless `crops_per_photo` is given, in which case a
    seeded random subset of that many cells per photo is taken (so large photos
    do not dominate). The split depends on `seed` and `val_fraction` only.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if size < 8:
        raise ValueError(f"crop size must be >= 8, got {size}")
    photos = photo_split(list_photos(real_dir), seed=seed, val_fraction=val_fraction)[split]
    crops: list[np.ndarray] = []
    sources: list[str] = []
    for p in photos:
        arr = load_photo(p)
        boxes = grid_boxes(arr.shape[1], arr.shape[0], size)
        if crops_per_photo is not None and len(boxes) > crops_per_photo:
            # Per-photo generator so a photo's choice does not depend on the other photos.
            rng = np.random.default_rng([seed, int(hashlib.sha256(p.name.encode()).hexdigest()[:8], 16)])
            keep = np.sort(rng.choice(len(boxes), size=crops_per_photo, replace=False))
            boxes = [boxes[i] for i in keep]
        for x, y in boxes:
            crops.append(arr[y : y + size, x : x + size])
            sources.append(p.name)
    if not crops:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), []
    out = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return out, sources


def load_real_crops(
    split: str,
    size: int = 64,
    real_dir: str | os.PathLike | None = None,
    seed: int = 0,
    crops_per_photo: int | None = None,
    val_fraction: float = 0.3,
) -> torch.Tensor:
    """uint8 (N,3,size,size) non-overlapping crops of the `split` photos (see real_crops_with_sources)."""
    return real_crops_with_sources(split, size, real_dir, seed, crops_per_photo, val_fraction)[0]


def photos_digest(photos: list[Path]) -> dict[str, str]:
    """name -> sha256 of the file, for cache keys and manifests."""
    return {p.name: sha256_file(p) for p in photos}
