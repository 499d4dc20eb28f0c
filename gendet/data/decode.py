"""Robust, bounded image decoding, in one place.

Every image that enters gendet (training, evaluation, scanning, explanation, the server) is
decoded here, so every caller gets the same RGB result, the same limits and the same error
messages. Failures raise :class:`DecodeError` with a short human reason (and a `kind` the
server maps to an HTTP status); callers record it per file and go on with the rest.

Budgets (`DecodeLimits`, each configurable), checked before any pixel is allocated:
- bytes read from one file; pixels of the source image; aspect ratio; pixels *after* the
  model's shorter-side resize (a 600000x1 PNG is 2 kB but would become 156 Gpx at 260 px);
- container structure: JPEG markers and progressive scans, PNG ancillary chunks (a 16 MB JPEG
  of 4 million empty APP markers, or a PNG of a million text chunks, costs seconds per decode);
- time: a soft alarm in the main thread here; the hard guarantee (kill and replace the worker
  process) is `gendet.data.decode_pool.DecodePool`, used by the scan and the server.
Each file is read once, checked and decoded from the same bytes.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import signal
import stat
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

MB = 1024 * 1024
# Keep Pillow's decompression-bomb guard as a backstop; gendet's own limit is checked first and
# reported with its own number. Pillow raises above 2x this value and only warns between 1x and 2x.
MAX_IMAGE_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# Truncated files must fail, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Error kinds (the server maps them to HTTP statuses; see gendet.serve.limits).
NOT_IMAGE, FORMAT, TOO_LARGE, LIMIT, CORRUPT, UNREADABLE, TIMEOUT, WORKER_DIED = (
    "not_image", "format", "too_large", "limit", "corrupt", "unreadable", "timeout", "worker_died")


@dataclass(frozen=True)
class DecodeLimits:
    """What one file may cost. Defaults were measured on the red-team corpus (benchmarks/hostile_decode.py):
    within them a file decodes in < 10 s and < 1 GB on 2 cores, and no camera or generator file we hold
    comes near them (real progressive JPEGs have about 10 scans, PNGs a handful of ancillary chunks).

    max_file_bytes: bytes read from one file. max_pixels: width x height of the source.
    max_aspect: long side / short side. max_resized_pixels: pixels after the model's shorter-side
    resize (or padding, for crop-only models), when that step enlarges the image.
    max_jpeg_markers / max_jpeg_scans: JPEG segments and progressive scans.
    max_png_chunks: PNG chunks other than image data (IDAT/fdAT).
    timeout_s: decode time per file (soft here; hard in DecodePool workers, which are replaced).
    """

    max_file_bytes: int = 256 * MB
    max_pixels: int = MAX_IMAGE_PIXELS
    max_aspect: float = 32.0
    max_resized_pixels: int = 16_000_000
    max_jpeg_markers: int = 1024
    max_jpeg_scans: int = 100
    max_png_chunks: int = 4096
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"decode limit {name} must be a positive number, got {value!r}")
        if self.max_aspect < 1:
            raise ValueError(f"decode limit max_aspect must be >= 1, got {self.max_aspect}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_pairs(cls, pairs: list[str], base: DecodeLimits | None = None) -> DecodeLimits:
        """`["timeout_s=5", "max_aspect=64"]` (the CLI's --decode-limit) over `base`; ValueError names the bad one."""
        values = (base or cls()).to_dict()
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or key not in values:
                raise ValueError(f"--decode-limit {pair!r}: expected KEY=VALUE with KEY one of {', '.join(values)}")
            kind = type(values[key])
            try:
                values[key] = kind(float(raw)) if kind is int else float(raw)
            except ValueError:
                raise ValueError(f"--decode-limit {pair!r}: {raw!r} is not a number") from None
        return cls(**values)


DEFAULT_LIMITS = DecodeLimits()


class DecodeError(Exception):
    """An input that cannot be turned into an RGB image; `reason` is user-facing, `kind` its category."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None, kind: str = CORRUPT):
        super().__init__(reason if path is None else f"{path}: {reason}")
        self.reason, self.path, self.kind = reason, path, kind

    def __reduce__(self) -> tuple:  # keep reason, path and kind across process boundaries
        return (DecodeError, (self.reason, self.path, self.kind))


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


# -- reading a file ---------------------------------------------------------------------------------

_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _stat_regular(p: Path, path: str | os.PathLike) -> os.stat_result:
    """os.stat of a file that may be read, or DecodeError naming what it is instead."""
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DecodeError("symbolic link loop", path, UNREADABLE) from None
        if e.errno == errno.ENOENT:
            why = "broken symbolic link" if p.is_symlink() else "file does not exist"
            raise DecodeError(why, path, UNREADABLE) from None
        if e.errno == errno.EACCES:
            raise DecodeError("permission denied", path, UNREADABLE) from None
        raise DecodeError(f"cannot read: {e.strerror or e}", path, UNREADABLE) from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError("is a directory, not an image file", path, NOT_IMAGE)
    for test, what in _SPECIAL_FILES:
        if test(st.st_mode):
            raise DecodeError(f"is {what}, not a regular file", path, NOT_IMAGE)
    return st


def read_file(path: str | os.PathLike, limits: DecodeLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a regular file, or DecodeError saying exactly why not (never blocks on a FIFO)."""
    p = Path(path)
    st = _stat_regular(p, path)
    if st.st_size > limits.max_file_bytes:
        raise DecodeError(f"file of {st.st_size} bytes exceeds the limit of {limits.max_file_bytes}", path, LIMIT)
    try:
        with open(p, "rb") as fh:
            # read one byte past the limit: files in /proc report size 0 but are not empty
            data = fh.read(limits.max_file_bytes + 1)
    except PermissionError:
        raise DecodeError("permission denied", path, UNREADABLE) from None
    except OSError as e:
        raise DecodeError(f"cannot read: {e.strerror or e}", path, UNREADABLE) from None
    if not data:
        raise DecodeError("empty file (0 bytes)", path, NOT_IMAGE)
    if len(data) > limits.max_file_bytes:
        raise DecodeError(f"file exceeds the limit of {limits.max_file_bytes} bytes", path, LIMIT)
    if st.st_size == 0:
        raise DecodeError("a special file with no stated size (e.g. in /proc), not an image file", path, NOT_IMAGE)
    return data


# -- container structure ----------------------------------------------------------------------------

# After a JPEG SOS header the entropy-coded data runs until a marker: 0xFF followed by anything but
# 0x00 (a stuffed byte) or a restart marker.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def iter_jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each top-level JPEG segment after SOI, without decoding: headers are walked by
    their lengths (so an embedded EXIF thumbnail is one APP1 segment), an SOS segment runs to the end of its
    entropy-coded scan. `start` is the segment's first 0xFF; a truncated last segment ends at len(data)."""
    pos, n = 2, len(data)
    while pos < n - 1:
        if data[pos] != 0xFF:
            nxt = data.find(b"\xff", pos)
            if nxt < 0:
                return
            pos = nxt
        start = pos
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return
        marker = data[pos]
        pos += 1
        if marker == 0xD9 or marker == 0x01 or 0xD0 <= marker <= 0xD7:  # EOI, standalone markers
            yield marker, start, pos
            if marker == 0xD9:
                return
            continue
        if pos + 2 > n:
            yield marker, start, n
            return
        pos += struct.unpack_from(">H", data, pos)[0]
        if marker == 0xDA:  # SOS: the entropy-coded scan follows
            m = _JPEG_NEXT_MARKER.search(data, pos)
            yield marker, start, m.start() if m else n
            if m is None:
                return
            pos = m.start()
        else:
            yield marker, start, pos


def check_jpeg_structure(data: bytes, limits: DecodeLimits) -> None:
    """Count JPEG segments and progressive scans (iter_jpeg_segments) against the limits."""
    markers = scans = 0
    for marker, _, _ in iter_jpeg_segments(data):
        markers += 1
        if markers > limits.max_jpeg_markers:
            raise DecodeError(f"JPEG with more than {limits.max_jpeg_markers} markers (limit max_jpeg_markers)",
                              kind=LIMIT)
        if marker == 0xDA:
            scans += 1
            if scans > limits.max_jpeg_scans:
                raise DecodeError(f"JPEG with more than {limits.max_jpeg_scans} progressive scans "
                                  "(limit max_jpeg_scans)", kind=LIMIT)


def check_png_structure(data: bytes, limits: DecodeLimits) -> None:
    """Count PNG chunks other than image data (IDAT, APNG fdAT)."""
    pos, n, chunks = 8, len(data), 0
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        if kind in (b"IDAT", b"fdAT"):
            continue
        chunks += 1
        if chunks > limits.max_png_chunks:
            raise DecodeError(f"PNG with more than {limits.max_png_chunks} non-image chunks (limit max_png_chunks)",
                              kind=LIMIT)
        if kind == b"IEND":
            return


def check_structure(data: bytes, limits: DecodeLimits) -> None:
    if data[:2] == b"\xff\xd8":
        check_jpeg_structure(data, limits)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        check_png_structure(data, limits)


def check_geometry(size: tuple[int, int], limits: DecodeLimits, short_side: int | None,
                   pad_to: int | None = None) -> None:
    """Source pixels, aspect ratio and the pixels the model's geometry step would make."""
    w, h = size
    if w <= 0 or h <= 0:
        raise DecodeError(f"invalid image size {w}x{h}", kind=CORRUPT)
    if w * h > limits.max_pixels:
        raise DecodeError(f"image too large: {w}x{h} pixels exceeds the limit of {limits.max_pixels}",
                          kind=TOO_LARGE)
    if max(w, h) / min(w, h) > limits.max_aspect:
        raise DecodeError(f"aspect ratio of {w}x{h} exceeds the limit of {limits.max_aspect:g}:1 (max_aspect)",
                          kind=LIMIT)
    if short_side is not None:
        scale = short_side / min(w, h)
        rw, rh = max(short_side, round(w * scale)), max(short_side, round(h * scale))
    elif pad_to is not None:
        rw, rh = max(w, pad_to), max(h, pad_to)
    else:
        return
    if rw * rh > max(limits.max_resized_pixels, w * h):  # only what the geometry step adds is capped here
        raise DecodeError(f"{w}x{h} would become {rw}x{rh} pixels at the model's input size, over the limit of "
                          f"{limits.max_resized_pixels} (max_resized_pixels)", kind=LIMIT)


# -- the time budget --------------------------------------------------------------------------------

class _DecodeTimeout(Exception):
    pass


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise DecodeError(kind=timeout) when the block runs past `seconds` (main thread only: elsewhere
    this is a no-op and the caller's process pool enforces the budget). Restores any earlier alarm."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _DecodeTimeout

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _DecodeTimeout:
        raise DecodeError(f"decoding took longer than {seconds:g} s (limit timeout_s)", kind=TIMEOUT) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, old_delay - (time.monotonic() - start)))


# -- decoding ---------------------------------------------------------------------------------------

def _checked_bytes(source: bytes | bytearray, limits: DecodeLimits) -> bytes:
    data = bytes(source)
    if not data:
        raise DecodeError("empty upload (0 bytes)", kind=NOT_IMAGE)
    if len(data) > limits.max_file_bytes:
        raise DecodeError(f"{len(data)} bytes exceeds the limit of {limits.max_file_bytes}", kind=LIMIT)
    return data


def decode_image(
    source: str | os.PathLike | bytes,
    limits: DecodeLimits | None = None,
    *,
    short_side: int | None = None,
    pad_to: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> Image.Image:
    """Decode a file path or raw bytes to an 8-bit RGB PIL image, within `limits`.

    short_side: the model resizes the shorter side to this (checked against max_resized_pixels);
    pad_to: the model crops without resizing and pads to this. formats: accepted Pillow format
    names (None: any). EXIF orientation is applied, animated files give their first frame.
    Raises DecodeError with a reason for anything else.
    """
    limits = limits or DEFAULT_LIMITS
    path = None if isinstance(source, bytes | bytearray) else source
    try:
        data = read_file(path, limits) if path is not None else _checked_bytes(source, limits)
        check_structure(data, limits)
        with time_budget(limits.timeout_s), Image.open(io.BytesIO(data)) as img:
            fmt = str(img.format or "").upper()
            if formats is not None and fmt not in formats:
                raise DecodeError(f"format {fmt or 'unknown'} is not accepted (accepted: {', '.join(formats)})",
                                  kind=FORMAT)
            check_geometry(img.size, limits, short_side, pad_to)
            if getattr(img, "is_animated", False):
                img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except DecodeError as e:
        if e.path is None and path is not None:
            raise DecodeError(e.reason, path, e.kind) from None
        raise
    except UnidentifiedImageError:
        raise DecodeError("not a recognised image format", path, NOT_IMAGE) from None
    except Image.DecompressionBombError:
        # Pillow's own message quotes its 2x hard limit; report the limit gendet enforces.
        raise DecodeError(f"image too large: over the limit of {limits.max_pixels} pixels "
                          "(decompression bomb refused)", path, TOO_LARGE) from None
    except MemoryError:
        raise DecodeError("cannot decode: out of memory", path, LIMIT) from None
    except OSError as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated or corrupt image data"
        raise DecodeError(f"cannot decode: {msg}", path) from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error, RecursionError) as e:
        raise DecodeError(f"cannot decode: {type(e).__name__}: {e}", path) from None
