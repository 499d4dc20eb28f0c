"""Robust image decoding, in one place.

Every image that enters gendet (training, evaluation, scanning, the server) is
decoded here, so every caller gets the same RGB result and the same error
messages. Failures raise :class:`DecodeError` with a short human reason; callers
record it per file and go on with the rest.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Keep Pillow's decompression-bomb guard: an image over this many pixels is
# refused instead of exhausting memory. Pillow raises above 2x this limit and
# only warns between 1x and 2x; we turn the warning into an error as well.
MAX_IMAGE_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# Truncated files must fail, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class DecodeError(Exception):
    """An input that cannot be turned into an RGB image; `reason` is user-facing."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        super().__init__(reason if path is None else f"{path}: {reason}")
        self.reason = reason
        self.path = path


def _to_rgb(img: Image.Image) -> Image.Image:
    """Palette, alpha, CMYK, 16-bit and grayscale inputs to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit integer grayscale: scale the real range to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = (arr - lo) / (hi - lo + 1e-12) * 255.0
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite on white so transparent pixels do not become arbitrary colours.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode a file path or raw bytes to an 8-bit RGB PIL image.

    EXIF orientation is applied, animated files give their first frame. Raises
    DecodeError with a reason for anything else.
    """
    path = None if isinstance(source, bytes | bytearray) else source
    try:
        if path is not None:
            p = Path(path)
            if p.is_dir():
                raise DecodeError("is a directory, not an image file", path)
            if not p.exists():
                why = "broken symbolic link" if p.is_symlink() else "file does not exist"
                raise DecodeError(why, path)
            if p.stat().st_size == 0:
                raise DecodeError("empty file (0 bytes)", path)
            fh = open(p, "rb")  # noqa: SIM115 - closed below
        else:
            if len(source) == 0:
                raise DecodeError("empty upload (0 bytes)")
            fh = io.BytesIO(source)
        with fh:
            with Image.open(fh) as img:
                w, h = img.size
                if w <= 0 or h <= 0:
                    raise DecodeError(f"invalid image size {w}x{h}", path)
                if w * h > max_pixels:
                    raise DecodeError(f"image too large: {w}x{h} pixels exceeds the limit of {max_pixels}", path)
                if getattr(img, "is_animated", False):
                    img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except DecodeError:
        raise
    except PermissionError:
        raise DecodeError("permission denied", path) from None
    except UnidentifiedImageError:
        raise DecodeError("not a recognised image format", path) from None
    except Image.DecompressionBombError:
        # Pillow's own message quotes its 2x hard limit; report the limit gendet enforces.
        raise DecodeError(f"image too large: over the limit of {max_pixels} pixels (decompression bomb refused)",
                          path) from None
    except OSError as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated or corrupt image data"
        raise DecodeError(f"cannot decode: {msg}", path) from None
    except (ValueError, SyntaxError, MemoryError, EOFError, IndexError, TypeError) as e:
        raise DecodeError(f"cannot decode: {type(e).__name__}: {e}", path) from None
