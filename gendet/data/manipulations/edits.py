"""Copy-move, splicing and the label-neutral whole-image perturbations.

Images are uint8 (H, W, 3) arrays; every edit returns the new image and the (H, W) source map
(codes in gendet.data.manipulations.codes). Blended edges feather the pasted region with a
Gaussian alpha; its pixels count as copied where alpha >= 0.5 (where the pasted content dominates).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from gendet.data.manipulations.codes import SOURCE_COPIED, SOURCE_REAL
from gendet.data.preprocess import encode_roundtrip

PERTURBATIONS = ("colour_jitter", "resize", "jpeg", "noise")


def _alpha(mask: np.ndarray, blended: bool) -> np.ndarray:
    if not blended:
        return mask.astype(np.float32)
    sigma = max(1.0, 0.02 * min(mask.shape))
    soft = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(soft, dtype=np.float32) / 255.0


def random_shift(mask: np.ndarray, rng: np.random.Generator, min_shift: float = 0.0,
                 tries: int = 32) -> tuple[int, int]:
    """(dy, dx) moving `mask`'s bounding box to another place inside the image (never (0, 0) when possible),
    preferring moves of at least `min_shift` pixels so a copy does not land on its source."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    dy_range, dx_range = (-int(ys.min()), h - 1 - int(ys.max())), (-int(xs.min()), w - 1 - int(xs.max()))
    best = (0, 0)
    for _ in range(tries):
        dy, dx = int(rng.integers(dy_range[0], dy_range[1] + 1)), int(rng.integers(dx_range[0], dx_range[1] + 1))
        if abs(dy) + abs(dx) > abs(best[0]) + abs(best[1]):
            best = (dy, dx)
        if abs(dy) + abs(dx) >= min_shift:
            return dy, dx
    return best


def _paste(target: np.ndarray, donor: np.ndarray, mask: np.ndarray, shift: tuple[int, int],
           blended: bool) -> tuple[np.ndarray, np.ndarray]:
    """Paste donor[mask] at mask shifted by `shift` into target; returns (image, source map)."""
    dy, dx = shift
    moved_mask = np.roll(mask, (dy, dx), axis=(0, 1))  # the shift keeps the box inside: no wrap-around
    moved_donor = np.roll(donor, (dy, dx), axis=(0, 1))
    alpha = _alpha(moved_mask, blended)[..., None]
    out = alpha * moved_donor.astype(np.float32) + (1 - alpha) * target.astype(np.float32)
    source = np.full(mask.shape, SOURCE_REAL, dtype=np.uint8)
    source[alpha[..., 0] >= 0.5] = SOURCE_COPIED
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), source


def copy_move(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
              blended: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Copy image[mask] to another place of the same image."""
    shift = random_shift(mask, rng, min_shift=0.25 * min(mask.shape))
    if shift == (0, 0):
        raise ValueError("the region spans the image: it cannot be moved (draw a smaller mask)")
    out, source = _paste(image, image, mask, shift, blended)
    return out, source, {"shift": list(shift)}


def splice(image: np.ndarray, donor: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
           blended: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Paste donor[mask] (another real image) into image, moved to a random place."""
    if donor.shape != image.shape:
        raise ValueError(f"donor {donor.shape} and image {image.shape} differ in shape")
    shift = random_shift(mask, rng)
    out, source = _paste(image, donor, mask, shift, blended)
    return out, source, {"shift": list(shift)}


def perturb(image: np.ndarray, rng: np.random.Generator, name: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """One semantics-preserving whole-image perturbation (random kind unless `name`); geometry is unchanged,
    so a mask stays valid. Applied to both classes alike, so it carries no label information."""
    name = name or str(rng.choice(PERTURBATIONS))
    img = Image.fromarray(image)
    if name == "colour_jitter":
        b, c, s = (float(v) for v in rng.uniform(0.8, 1.2, size=3))
        img = ImageEnhance.Color(ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(b)).enhance(c)).enhance(s)
        params: dict[str, Any] = {"brightness": b, "contrast": c, "saturation": s}
    elif name == "resize":
        f = float(rng.uniform(0.5, 0.85))
        small = img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), Image.Resampling.BICUBIC)
        img = small.resize(img.size, Image.Resampling.BICUBIC)
        params = {"factor": f}
    elif name == "jpeg":
        q = int(rng.integers(60, 96))
        img = encode_roundtrip(img, "jpeg", q)
        params = {"quality": q}
    elif name == "noise":
        sigma = float(rng.uniform(2.0, 6.0))
        arr = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        params = {"sigma": sigma}
    else:
        raise ValueError(f"unknown perturbation {name!r}; known: {PERTURBATIONS}")
    return np.asarray(img.convert("RGB")), {"name": name, **params}
