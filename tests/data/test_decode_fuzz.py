"""Fuzzing the decoder (hypothesis, derandomised so CI is repeatable): mutated and truncated images of every
accepted format decode to RGB or raise DecodeError with a reason, within the time budget; nothing else escapes."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gendet.data.decode import DecodeError, DecodeLimits, check_structure, decode_image

FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
LIMITS = DecodeLimits(timeout_s=2.0)
FUZZ = settings(max_examples=8000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow],
                database=None)


def _seed(fmt: str) -> bytes:
    arr = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    kw = {"progressive": True, "quality": 80} if fmt == "JPEG" else {}
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


SEEDS = {fmt: _seed(fmt) for fmt in FORMATS}
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF we make


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(FORMATS))])
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "repeat")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        else:  # a repeated segment: the shape of the marker and chunk floods
            n = draw(st.integers(1, 32))
            data[pos:pos] = bytes(data[pos:pos + n]) * draw(st.integers(2, 200))
    return bytes(data)


def _decode_or_reason(data: bytes) -> None:
    t = time.perf_counter()
    try:
        img = decode_image(data, LIMITS, short_side=64)
        assert img.mode == "RGB" and img.size[0] > 0 and img.size[1] > 0
    except DecodeError as e:
        assert e.reason and e.kind
    assert time.perf_counter() - t < LIMITS.timeout_s + 1.0


@FUZZ
@given(mutated())
def test_mutated_images_decode_or_fail_with_a_reason(data: bytes) -> None:
    _decode_or_reason(data)


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(st.sampled_from([b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF", b"BM", b"II*\x00", b""]),
       st.binary(max_size=2048))
def test_arbitrary_bytes_behind_a_magic_number(magic: bytes, tail: bytes) -> None:
    try:
        check_structure(magic + tail, LIMITS)
    except DecodeError:
        pass
    _decode_or_reason(magic + tail)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_unmutated_seeds_decode(fmt: str) -> None:
    assert decode_image(SEEDS[fmt], LIMITS).size == (32, 24)
