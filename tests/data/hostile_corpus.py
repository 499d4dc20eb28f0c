"""A folder of hostile and unusual image files, for any test suite that reads user images.

`build_hostile_corpus(dir)` writes the files and returns {name: path}. `VALID` names
decode to RGB (with the expected (width, height) in `VALID_SIZES`), `INVALID` names must
raise DecodeError. `unreadable` is INVALID only when not running as root (root can read it).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from gendet.data.decode import iter_jpeg_segments

# (width, height) after decoding (EXIF rotation applied).
VALID_SIZES: dict[str, tuple[int, int]] = {
    "plain_jpeg": (40, 30),
    "one_pixel": (1, 1),
    "png16": (24, 16),
    "grayscale": (20, 20),
    "rgba": (20, 12),
    "cmyk_jpeg": (32, 24),
    "palette_transparent": (24, 24),
    "animated_gif": (20, 16),
    "animated_webp": (20, 16),
    "exif_rotated": (20, 40),  # stored 40x20 with orientation 6 (rotate 90 deg)
    "non_utf8_name": (16, 16),
}
VALID = frozenset(VALID_SIZES)
INVALID = frozenset(
    {"zero_bytes", "truncated_jpeg", "text_as_png", "decompression_bomb", "unreadable", "broken_symlink", "dir_jpg"}
)


def _noise(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels (never allocated here)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # a sliver of (invalid-length) pixel data
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _animated(path: Path, fmt: str) -> None:
    frames = [Image.fromarray(_noise(20, 16, seed=i)) for i in range(3)]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def build_hostile_corpus(directory: str | os.PathLike) -> dict[str, Path]:
    """Write the corpus into `directory` (created if needed) and return {name: path}."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p: dict[str, Path] = {}

    p["plain_jpeg"] = d / "plain.jpg"
    Image.fromarray(_noise(40, 30)).save(p["plain_jpeg"], quality=90)

    p["one_pixel"] = d / "one_pixel.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(p["one_pixel"])

    p["png16"] = d / "sixteen_bit.png"
    ramp = (np.arange(24 * 16, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16)
    Image.fromarray(ramp).save(p["png16"])

    p["grayscale"] = d / "gray.png"
    Image.fromarray(_noise(20, 20)[..., 0]).save(p["grayscale"])

    p["rgba"] = d / "rgba.png"
    rgba = np.concatenate([_noise(20, 12), np.full((12, 20, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba).save(p["rgba"])

    p["cmyk_jpeg"] = d / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 128, 255, 20)).save(p["cmyk_jpeg"], quality=90)

    p["palette_transparent"] = d / "palette.png"
    pal = Image.fromarray(_noise(24, 24)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(p["palette_transparent"], transparency=0)

    p["animated_gif"] = d / "animated.gif"
    _animated(p["animated_gif"], "GIF")
    p["animated_webp"] = d / "animated.webp"
    _animated(p["animated_webp"], "WEBP")

    p["exif_rotated"] = d / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    Image.fromarray(_noise(40, 20)).save(p["exif_rotated"], quality=90, exif=exif.tobytes())

    p["non_utf8_name"] = Path(os.fsdecode(os.path.join(os.fsencode(d), b"bad\xff.jpg")))
    with open(os.fsencode(p["non_utf8_name"]), "wb") as fh:
        Image.fromarray(_noise(16, 16)).save(fh, format="JPEG", quality=90)

    p["zero_bytes"] = d / "empty.jpg"
    p["zero_bytes"].write_bytes(b"")

    p["truncated_jpeg"] = d / "truncated.jpg"
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, format="JPEG", quality=90)
    p["truncated_jpeg"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])

    p["text_as_png"] = d / "notes.png"
    p["text_as_png"].write_text("this is not an image\n")

    p["decompression_bomb"] = d / "bomb.png"
    p["decompression_bomb"].write_bytes(png_bomb_bytes())

    p["unreadable"] = d / "unreadable.jpg"
    Image.fromarray(_noise(16, 16)).save(p["unreadable"], quality=90)
    os.chmod(p["unreadable"], 0)

    p["broken_symlink"] = d / "dangling.jpg"
    os.symlink(d / "does_not_exist.jpg", p["broken_symlink"])

    p["dir_jpg"] = d / "x.jpg"
    p["dir_jpg"].mkdir()
    return p


# -- the red-team files (issue: bounded decoding). Small versions by default so tests stay fast; the
# benchmark (benchmarks/hostile_decode.py) builds them at the sizes the attacks used.

def wide_png_bytes(width: int = 600_000, height: int = 1) -> bytes:
    """A valid PNG of width x height (a couple of kB): harmless to decode, huge after a shorter-side resize."""
    row = b"\x00" + b"\x80" * (3 * width)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(row * height, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def many_scans_jpeg_bytes(scans: int = 20_000, size: int = 256) -> bytes:
    """A progressive JPEG whose smallest AC scan is repeated: libjpeg walks the whole image for every copy."""
    buf = io.BytesIO()
    Image.fromarray(_noise(size, size)).save(buf, format="JPEG", quality=90, progressive=True)
    data = buf.getvalue()
    segs = [(start, end) for _, start, end in iter_jpeg_segments(data)]
    sos = [s for s in segs if data[s[0] + 1] == 0xDA]

    def spectral_start(seg: tuple[int, int]) -> int:
        ns = data[seg[0] + 4]
        return data[seg[0] + 5 + 2 * ns]

    small = min((s for s in sos if spectral_start(s) > 0), key=lambda s: s[1] - s[0])
    eoi = segs[-1][0]
    return data[:eoi] + data[small[0]:small[1]] * max(0, scans - len(sos)) + data[eoi:]


def many_markers_jpeg_bytes(markers: int = 4_000_000) -> bytes:
    """A small JPEG preceded by `markers` empty APP1 segments (4 bytes each)."""
    buf = io.BytesIO()
    Image.fromarray(_noise(32, 32)).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return data[:2] + b"\xff\xe1\x00\x02" * markers + data[2:]


def many_text_chunks_png_bytes(chunks: int = 1_000_000) -> bytes:
    """A small PNG with `chunks` tEXt chunks before the image data."""
    buf = io.BytesIO()
    Image.fromarray(_noise(16, 16)).save(buf, format="PNG")
    data = buf.getvalue()
    text = _png_chunk(b"tEXt", b"k\x00v")
    ihdr_end = 8 + 25
    return data[:ihdr_end] + text * chunks + data[ihdr_end:]


def build_redteam_corpus(directory: str | os.PathLike, scale: float = 0.001) -> dict[str, Path]:
    """The red-team files at `scale` of the attack sizes (1.0 = as attacked; the limits refuse both).

    `wide_png` stays 600000x1 at any scale (it is tiny); special files (a FIFO, a symlink loop, an input
    named like a path list) are made too. {name: path}; every one must give an error record, fast.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p: dict[str, Path] = {}
    blobs = {
        "wide_png": ("wide.png", wide_png_bytes(600_000, 1)),
        "tall_png": ("tall.png", wide_png_bytes(1, 200_000)),
        "many_scans_jpeg": ("scans.jpg", many_scans_jpeg_bytes(max(200, int(20_000 * scale)))),
        "many_markers_jpeg": ("markers.jpg", many_markers_jpeg_bytes(max(2_000, int(4_000_000 * scale)))),
        "many_text_chunks_png": ("chunks.png", many_text_chunks_png_bytes(max(5_000, int(1_000_000 * scale)))),
    }
    for name, (fname, data) in blobs.items():
        p[name] = d / fname
        p[name].write_bytes(data)
    p["fifo"] = d / "pipe.jpg"
    os.mkfifo(p["fifo"])
    p["symlink_loop"] = d / "loop.jpg"
    os.symlink(d / "loop.jpg", p["symlink_loop"])
    return p


REDTEAM = frozenset({"wide_png", "tall_png", "many_scans_jpeg", "many_markers_jpeg", "many_text_chunks_png",
                     "fifo", "symlink_loop"})
