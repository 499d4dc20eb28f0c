"""Train-time augmentations owned by detectors: reusable ImageOps `f(img, rng) -> img`.

These run only on training images (after geometry and format alignment, see
gendet.data.preprocess.ImageTransform); evaluation degradations live in
gendet.evaluation and are never drawn from here. All randomness comes from the
`rng` passed in, so an augmented sample depends only on its per-sample seed.

A detector describes its augmentation as a dict in its config (recorded in
config.json), e.g. CNNDetection's "Blur+JPEG (0.5)":
    {"flip_prob": 0.5, "blur_prob": 0.5, "blur_sigma": [0.0, 3.0], "jpeg_prob": 0.5, "jpeg_quality": [30, 100]}
and `make_augment(**that_dict)` builds the composition (blur -> JPEG -> flip, the
order CNNDetection applies them in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from gendet.data.preprocess import ImageOp, encode_roundtrip

# Every key make_augment understands, with the value meaning "off".
AUGMENT_KEYS: dict[str, Any] = {
    "flip_prob": 0.0,
    "blur_prob": 0.0,
    "blur_sigma": [0.0, 3.0],
    "jpeg_prob": 0.0,
    "jpeg_quality": [30, 100],
}


def _check_prob(p: float, what: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {p}")
    return p


def _check_range(r: Sequence[float], what: str, lo: float, hi: float) -> tuple[float, float]:
    if len(r) != 2 or not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(f"{what} must be [low, high] with {lo} <= low <= high <= {hi}, got {list(r)}")
    return float(r[0]), float(r[1])


# The ops are small picklable classes rather than closures, so DataLoader workers
# started with "spawn"/"forkserver" can receive them.
@dataclass(frozen=True)
class HFlip:
    p: float = 0.5

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        return ImageOps.mirror(img) if rng.random() < self.p else img


@dataclass(frozen=True)
class GaussianBlur:
    p: float = 0.5
    sigma: tuple[float, float] = (0.0, 3.0)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if rng.random() >= self.p:
            return img
        s = float(rng.uniform(*self.sigma))
        return img.filter(ImageFilter.GaussianBlur(radius=s)) if s > 0 else img


@dataclass(frozen=True)
class Jpeg:
    p: float = 0.5
    quality: tuple[int, int] = (30, 100)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if rng.random() >= self.p:
            return img
        return encode_roundtrip(img, "jpeg", int(rng.integers(self.quality[0], self.quality[1] + 1)))


@dataclass(frozen=True)
class Compose:
    ops: tuple[ImageOp, ...]

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        for f in self.ops:
            img = f(img, rng)
        return img


def hflip(p: float = 0.5) -> ImageOp:
    """Mirror left-right with probability p."""
    return HFlip(_check_prob(p, "flip probability"))


def gaussian_blur(p: float = 0.5, sigma: Sequence[float] = (0.0, 3.0)) -> ImageOp:
    """With probability p, Gaussian blur with sigma ~ U[sigma[0], sigma[1]] (Pillow: radius = sigma)."""
    return GaussianBlur(_check_prob(p, "blur probability"), _check_range(sigma, "blur sigma", 0.0, 50.0))


def jpeg(p: float = 0.5, quality: Sequence[int] = (30, 100)) -> ImageOp:
    """With probability p, JPEG re-encode (Pillow) at an integer quality ~ U{quality[0]..quality[1]}.

    Uses the same encoder settings as format alignment and the protocol's JPEG
    degradations, so the model is trained on the compression it is tested with.
    """
    lo, hi = _check_range(quality, "JPEG quality", 1, 100)
    if lo != int(lo) or hi != int(hi):
        raise ValueError(f"JPEG quality bounds must be integers, got {list(quality)}")
    return Jpeg(_check_prob(p, "JPEG probability"), (int(lo), int(hi)))


def compose(*ops: ImageOp | None) -> ImageOp | None:
    """Apply ops left to right; None entries are skipped; no op at all -> None."""
    chain = tuple(o for o in ops if o is not None)
    return Compose(chain) if chain else None


def merge_augment(default: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """A detector's augment config with a partial override (unknown keys are an error)."""
    merged = {**AUGMENT_KEYS, **dict(default), **dict(override or {})}
    unknown = set(merged) - set(AUGMENT_KEYS)
    if unknown:
        raise ValueError(f"unknown augment keys {sorted(unknown)}; known: {sorted(AUGMENT_KEYS)}")
    return merged


def make_augment(
    flip_prob: float = 0.0,
    blur_prob: float = 0.0,
    blur_sigma: Sequence[float] = (0.0, 3.0),
    jpeg_prob: float = 0.0,
    jpeg_quality: Sequence[int] = (30, 100),
) -> ImageOp | None:
    """Blur -> JPEG -> flip, each only if its probability is > 0. All zero -> None."""
    return compose(
        gaussian_blur(blur_prob, blur_sigma) if blur_prob > 0 else None,
        jpeg(jpeg_prob, jpeg_quality) if jpeg_prob > 0 else None,
        hflip(flip_prob) if flip_prob > 0 else None,
    )
