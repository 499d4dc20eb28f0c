"""decode_image over the hostile corpus: RGB for the valid files, DecodeError with a reason for the rest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gendet.data import DecodeError, DecodeLimits, decode_image

from .hostile_corpus import INVALID, VALID, VALID_SIZES, build_hostile_corpus, png_bomb_bytes

EXPECTED_REASON = {
    "zero_bytes": "empty",
    "truncated_jpeg": "truncated",
    "text_as_png": "not a recognised image",
    "decompression_bomb": "bomb",
    "unreadable": "permission denied",
    "broken_symlink": "broken symbolic link",
    "dir_jpg": "directory",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_hostile_corpus(tmp_path_factory.mktemp("hostile"))


def test_corpus_is_complete(corpus: dict[str, Path]) -> None:
    assert set(corpus) == VALID | INVALID
    assert set(EXPECTED_REASON) == set(INVALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_files_decode_to_rgb(corpus: dict[str, Path], name: str) -> None:
    img = decode_image(corpus[name])
    assert img.mode == "RGB"
    assert img.size == VALID_SIZES[name]
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.shape == (img.height, img.width, 3)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_files_raise_decode_error_with_reason(corpus: dict[str, Path], name: str) -> None:
    if name == "unreadable" and os.access(corpus[name], os.R_OK):
        pytest.skip("running as root: a chmod 000 file is still readable")
    with pytest.raises(DecodeError) as exc:
        decode_image(corpus[name])
    assert EXPECTED_REASON[name] in exc.value.reason.lower()
    assert str(corpus[name]) in str(exc.value)  # the message names the file


def test_exif_rotation_swaps_size_and_moves_pixels(corpus: dict[str, Path]) -> None:
    with Image.open(corpus["exif_rotated"]) as raw:
        stored = np.asarray(raw.convert("RGB"), dtype=np.float32)
    assert stored.shape[:2] == (20, 40)  # stored landscape
    shown = np.asarray(decode_image(corpus["exif_rotated"]), dtype=np.float32)
    # orientation 6 = rotate 90 degrees clockwise for display
    assert np.abs(shown - np.rot90(stored, k=-1)).mean() < 1.0


def test_sixteen_bit_is_scaled_not_clipped(corpus: dict[str, Path]) -> None:
    arr = np.asarray(decode_image(corpus["png16"]))
    assert arr.max() >= 250 and arr.min() == 0  # full 16-bit range mapped to 8 bits
    assert len(np.unique(arr)) > 100  # not saturated to a few values


def test_transparent_pixels_become_white(corpus: dict[str, Path]) -> None:
    with Image.open(corpus["palette_transparent"]) as raw:
        transparent = np.asarray(raw) == 0
    assert transparent.any()
    arr = np.asarray(decode_image(corpus["palette_transparent"]))
    assert (arr[transparent] == 255).all()


def test_animated_gives_first_frame(corpus: dict[str, Path]) -> None:
    with Image.open(corpus["animated_gif"]) as raw:
        assert raw.n_frames == 3
        first = np.asarray(raw.convert("RGB"))
    assert np.array_equal(np.asarray(decode_image(corpus["animated_gif"])), first)


def test_bytes_input() -> None:
    with pytest.raises(DecodeError, match="too large|bomb"):
        decode_image(png_bomb_bytes())
    with pytest.raises(DecodeError, match="empty"):
        decode_image(b"")
    with pytest.raises(DecodeError, match="not a recognised"):
        decode_image(b"GIF? no, just text")


def test_bomb_limit_is_per_call(corpus: dict[str, Path]) -> None:
    with pytest.raises(DecodeError, match="too large"):
        decode_image(corpus["plain_jpeg"], DecodeLimits(max_pixels=100))


def test_missing_file() -> None:
    with pytest.raises(DecodeError, match="does not exist"):
        decode_image("/nonexistent/definitely/missing.png")
