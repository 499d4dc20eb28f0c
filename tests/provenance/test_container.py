"""Reading metadata from bytes: every container, and hostile ones within bounds."""

from __future__ import annotations

import io
import struct
import time
import zlib

from PIL import Image

from gendet.provenance.container import MAX_TEXT_BYTES, read_metadata, sniff_format
from provenance.helpers import chunk, itext, png_bytes, text, with_chunks, xmp_packet


def test_png_text_ztxt_and_itxt_are_read() -> None:
    data = with_chunks(png_bytes(), text("parameters", "a cat\nSteps: 20"),
                       chunk(b"zTXt", b"prompt\x00\x00" + zlib.compress(b'{"1": {}}')),
                       itext("workflow", '{"nodes": []}', compressed=True), itext("XML:com.adobe.xmp", xmp_packet()))
    md = read_metadata(data)
    assert md.format == "png" and not md.errors
    assert {k: v for k, v, _ in md.texts} == {"parameters": "a cat\nSteps: 20", "prompt": '{"1": {}}',
                                              "workflow": '{"nodes": []}'}
    assert len(md.xmp) == 1 and "trainedAlgorithmicMedia" in md.xmp[0]


def test_a_chunk_with_a_wrong_crc_is_reported_and_skipped_the_others_kept() -> None:
    data = with_chunks(png_bytes(), text("Software", "NovelAI"), chunk(b"tEXt", b"parameters\x00Steps: 1", crc=1))
    md = read_metadata(data)
    assert [k for k, _, _ in md.texts] == ["Software"]
    assert any("wrong CRC" in e for e in md.errors)


def test_a_10_mb_text_chunk_is_cut_to_the_budget_quickly() -> None:
    data = with_chunks(png_bytes(), text("parameters", "x" * 10_000_000))
    start = time.perf_counter()
    md = read_metadata(data)
    assert time.perf_counter() - start < 1.0
    (key, value, cut), = md.texts
    assert key == "parameters" and cut and len(value) == MAX_TEXT_BYTES
    assert any("only the first" in e for e in md.errors)


def test_a_compressed_text_bomb_inflates_only_to_the_budget() -> None:
    bomb = zlib.compress(b"\x00" * 200_000_000, 9)  # 200 MB of zeros in ~200 kB
    md = read_metadata(with_chunks(png_bytes(), chunk(b"zTXt", b"workflow\x00\x00" + bomb)))
    (_, value, cut), = md.texts
    assert cut and len(value) <= MAX_TEXT_BYTES and any("inflates past" in e for e in md.errors)


def test_truncated_and_garbage_containers_give_errors_not_exceptions() -> None:
    png = with_chunks(png_bytes(), text("parameters", "Steps: 3"))
    assert read_metadata(png[:40]).errors  # cut inside the first text chunk
    assert read_metadata(b"\x89PNG\r\n\x1a\n" + b"\xff" * 64).errors
    webp = b"RIFF" + struct.pack("<I", 100) + b"WEBP" + b"EXIF" + struct.pack("<I", 1000) + b"\x00" * 10
    assert read_metadata(webp).errors
    assert read_metadata(b"\xff\xd8\xff\xe1\xff\xff" + b"Exif\x00\x00" + b"\x00" * 5).format == "jpeg"
    assert read_metadata(b"not an image at all").errors == []  # the pixel decoder reports non-images


def test_jpeg_webp_and_tiff_metadata() -> None:
    img = Image.new("RGB", (16, 16))
    exif = Image.Exif()
    exif[0x0131] = "NovelAI"
    for fmt in ("JPEG", "WEBP", "TIFF"):
        buf = io.BytesIO()
        img.save(buf, fmt, exif=exif, xmp=xmp_packet().encode())
        md = read_metadata(buf.getvalue())
        assert md.exif and (md.xmp or fmt == "TIFF"), fmt  # Pillow writes no XMP into TIFF
        assert sniff_format(buf.getvalue()) == fmt.lower()
    assert sniff_format(b"plain text") is None


def test_jumbf_boxes_are_noticed() -> None:
    assert read_metadata(with_chunks(png_bytes(), chunk(b"caBX", b"\x00\x00\x00\x10jumbc2pa"))).c2pa
    jpeg = b"\xff\xd8\xff\xeb\x00\x14JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0cjumb\xff\xd9"
    assert read_metadata(jpeg).c2pa
