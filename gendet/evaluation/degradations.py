"""GenImage Task 2: the six evaluation-time degradations.

The protocol owns these; they are applied to evaluation images only, after
geometry and format alignment (see ImageTransform), and never during training
(train-time augmentation belongs to each detector). Each is an ImageOp
``f(img, rng) -> img``; none needs randomness, so the rng is accepted and
ignored and the result depends on the image alone.

- ``resize_112`` / ``resize_64``: GenImage downsamples its 224 px input to 112
  and 64 px. gendet also evaluates at other model sizes, so ``resize_N``
  downsamples each side by the factor N/224 (N px at 224 px; rounded, at least
  8 px) with Pillow's anti-aliased bilinear filter. ImageTransform then resizes
  the result back to the model size, so the detail is lost, not the size.
- ``jpeg_65`` / ``jpeg_30``: Pillow JPEG encode/decode at that quality (4:2:0).
- ``blur_3`` / ``blur_5``: Gaussian blur with sigma 3 / 5 px at 224 px, scaled
  like ``resize_N`` by (longer side)/224, so a 64 px benchmark image loses the same
  share of its detail as a 224 px one (a fixed 5 px sigma would wipe a 64 px image
  out). Pillow's ``GaussianBlur(radius)`` takes the standard deviation;
  tests/evaluation checks this.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from gendet.data.preprocess import ImageOp, encode_roundtrip

REFERENCE_SIZE = 224  # GenImage's input side, the size the resize_N names refer to
MIN_SIDE = 8


def downsample(size_at_224: int) -> ImageOp:
    def op(img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        factor = size_at_224 / REFERENCE_SIZE
        w, h = img.size
        new = (max(MIN_SIDE, round(w * factor)), max(MIN_SIDE, round(h * factor)))
        return img.resize(new, Image.Resampling.BILINEAR) if new != (w, h) else img.copy()

    op.__name__ = f"resize_{size_at_224}"
    return op


def jpeg(quality: int) -> ImageOp:
    def op(img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return encode_roundtrip(img.convert("RGB"), "jpeg", quality)

    op.__name__ = f"jpeg_{quality}"
    return op


def gaussian_blur(sigma: float) -> ImageOp:
    def op(img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(radius=sigma * max(img.size) / REFERENCE_SIZE))

    op.__name__ = f"blur_{sigma:g}"
    return op


DEGRADATIONS: dict[str, ImageOp] = {
    "resize_112": downsample(112),
    "resize_64": downsample(64),
    "jpeg_65": jpeg(65),
    "jpeg_30": jpeg(30),
    "blur_3": gaussian_blur(3),
    "blur_5": gaussian_blur(5),
}


def get_degradation(name: str) -> ImageOp:
    """The named degradation; a ValueError lists the valid names otherwise."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; choose one of: {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]
