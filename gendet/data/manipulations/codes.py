"""Pixel source codes and their mask-PNG encoding.

A mask is an 8-bit grayscale PNG of the image's size: 0 = real, 255 = generated (by a model),
128 = copied from a real image (copy-move or splice). Any non-zero pixel is "manipulated", so a
plain black/white mask from another data set reads as real/generated. Decoding bins the values
(< 64 real, < 192 copied, else generated) so a mask that was resized with interpolation still reads.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SOURCE_REAL, SOURCE_GENERATED, SOURCE_COPIED = 0, 1, 2
SOURCE_NAMES = ("real", "generated", "copied")
PNG_VALUE = {SOURCE_REAL: 0, SOURCE_GENERATED: 255, SOURCE_COPIED: 128}


def encode_source_map(source: np.ndarray) -> Image.Image:
    """(H, W) source codes in {0, 1, 2} -> the mask PNG image ("L")."""
    source = np.asarray(source)
    if source.ndim != 2 or not np.isin(source, list(PNG_VALUE)).all():
        raise ValueError(f"source map must be (H, W) with values in {sorted(PNG_VALUE)}")
    lut = np.zeros(3, dtype=np.uint8)
    for code, value in PNG_VALUE.items():
        lut[code] = value
    return Image.fromarray(lut[source.astype(np.int64)], mode="L")


def decode_source_map(mask: Image.Image) -> np.ndarray:
    """A mask image (any mode) -> (H, W) uint8 source codes."""
    v = np.asarray(mask.convert("L"), dtype=np.uint8)
    out = np.full(v.shape, SOURCE_GENERATED, dtype=np.uint8)
    out[v < 192] = SOURCE_COPIED
    out[v < 64] = SOURCE_REAL
    return out
