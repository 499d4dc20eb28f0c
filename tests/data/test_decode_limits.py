"""The decode budgets: every red-team file is refused fast with its reason; ordinary files pass."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.hostile_corpus import (
    REDTEAM,
    build_redteam_corpus,
    many_markers_jpeg_bytes,
    many_scans_jpeg_bytes,
    many_text_chunks_png_bytes,
    wide_png_bytes,
)
from gendet.data.decode import (
    LIMIT,
    NOT_IMAGE,
    TIMEOUT,
    DecodeError,
    DecodeLimits,
    check_geometry,
    decode_image,
    read_file,
    time_budget,
)
from gendet.data.preprocess import Preprocess, decode_for_model

UNLIMITED_STRUCTURE = DecodeLimits(max_jpeg_markers=10**9, max_jpeg_scans=10**9, max_png_chunks=10**9)


@pytest.fixture(scope="module")
def redteam(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_redteam_corpus(tmp_path_factory.mktemp("redteam"))


@pytest.mark.parametrize("name", sorted(REDTEAM))
def test_every_redteam_file_is_refused_fast_with_a_reason(redteam: dict[str, Path], name: str) -> None:
    t = time.perf_counter()
    with pytest.raises(DecodeError) as err:
        decode_for_model(str(redteam[name]), Preprocess(size=260))
    assert time.perf_counter() - t < 2.0
    assert err.value.reason and str(redteam[name]) in str(err.value)


def test_the_wide_png_is_refused_by_aspect_ratio_before_any_resize() -> None:
    with pytest.raises(DecodeError, match="aspect ratio of 600000x1") as err:
        decode_image(wide_png_bytes(), short_side=260)
    assert err.value.kind == LIMIT


def test_the_pixel_cap_after_resizing_binds_within_the_aspect_limit() -> None:
    check_geometry((3000, 100), DecodeLimits(), short_side=260)  # 7800x260: fine
    with pytest.raises(DecodeError, match="would become 7800x260"):
        check_geometry((3000, 100), DecodeLimits(max_resized_pixels=1_000_000), short_side=260)
    with pytest.raises(DecodeError, match="would become"):
        check_geometry((40, 1000), DecodeLimits(max_resized_pixels=100_000), short_side=None, pad_to=512)


def test_structure_limits_name_the_limit_and_raising_them_lets_the_file_through() -> None:
    cases = [(many_markers_jpeg_bytes(2000), "max_jpeg_markers"), (many_scans_jpeg_bytes(300), "max_jpeg_scans"),
             (many_text_chunks_png_bytes(5000), "max_png_chunks")]
    for data, limit in cases:
        with pytest.raises(DecodeError, match=limit):
            decode_image(data)
        assert decode_image(data, UNLIMITED_STRUCTURE).mode == "RGB"


def test_ordinary_progressive_jpegs_and_exif_thumbnails_pass_the_structure_checks() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    thumb = io.BytesIO()
    img.resize((80, 60)).save(thumb, format="JPEG")
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, progressive=True, optimize=True, exif=exif.tobytes())
    assert decode_image(buf.getvalue()).size == (400, 300)


def test_the_time_budget_stops_a_slow_decode_and_restores_an_earlier_alarm() -> None:
    slow = many_scans_jpeg_bytes(1000, 512)
    limits = DecodeLimits(max_jpeg_markers=10**9, max_jpeg_scans=10**9, timeout_s=0.05)
    t = time.perf_counter()
    with pytest.raises(DecodeError, match="longer than 0.05 s") as err:
        decode_image(slow, limits)
    assert err.value.kind == TIMEOUT and time.perf_counter() - t < 1.5
    with time_budget(5.0):
        pass  # no alarm left behind
    import signal
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_special_files_say_what_they_are(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError, match="named pipe") as err:
        read_file(fifo)
    assert err.value.kind == NOT_IMAGE
    with pytest.raises(DecodeError, match="character device"):
        read_file("/dev/zero")
    if os.path.exists("/proc/self/status"):
        with pytest.raises(DecodeError, match="no stated size"):
            decode_image("/proc/self/status")
        with pytest.raises(DecodeError, match="cannot read: Input/output error"):
            decode_image("/proc/self/mem")
    loop = tmp_path / "loop.jpg"
    os.symlink(loop, loop)
    with pytest.raises(DecodeError, match="symbolic link loop"):
        read_file(loop)


def test_file_size_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    p.write_bytes(b"\x89PNG" + b"\0" * 2000)
    with pytest.raises(DecodeError, match="exceeds the limit of 1000"):
        read_file(p, DecodeLimits(max_file_bytes=1000))


def test_limits_refuse_nonsense_values() -> None:
    for bad in ({"max_pixels": 0}, {"timeout_s": float("nan")}, {"max_aspect": 0.5}, {"max_png_chunks": -1}):
        with pytest.raises(ValueError):
            DecodeLimits(**bad)


def test_decode_error_keeps_reason_and_kind_through_pickle() -> None:
    import pickle

    e = pickle.loads(pickle.dumps(DecodeError("why", "/x.png", LIMIT)))
    assert (e.reason, e.path, e.kind) == ("why", "/x.png", LIMIT)
