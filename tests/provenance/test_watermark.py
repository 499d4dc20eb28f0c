"""Invisible watermarks embedded with invisible-watermark on a photo, then re-encoded and resized."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gendet.provenance.watermark import PAYLOADS, watermark_findings
from provenance.helpers import photo, textured, watermarked

pytest.importorskip("imwatermark")


def jpeg(img: Image.Image, subsampling: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, subsampling=subsampling)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize("payload", [b"StableDiffusionV1", b"SDV2"])
def test_found_losslessly_and_after_jpeg_q90_444_not_after_420_or_a_half_resize(payload) -> None:
    marked = watermarked(textured(), payload)
    (f,) = watermark_findings(marked)
    assert (f.says, f.strength) == ("generated", "embedded") and payload.decode() in f.detail
    assert len(watermark_findings(jpeg(marked, 0))) == 1  # JPEG q90, full-resolution chroma: survives
    assert watermark_findings(jpeg(marked, 2)) == []  # q90 with 4:2:0 chroma (Pillow's default): lost
    assert watermark_findings(marked.resize((marked.width // 2, marked.height // 2))) == []


def test_the_sdxl_message_in_either_channel_order() -> None:
    import numpy as np
    from imwatermark import WatermarkEncoder

    sdxl = next(p for p in PAYLOADS if p.name.startswith("SDXL"))
    enc = WatermarkEncoder()
    enc.set_watermark("bits", list(sdxl.bits))
    rgb = np.ascontiguousarray(np.asarray(textured()))
    as_rgb = Image.fromarray(enc.encode(rgb.copy(), "dwtDct"))  # early diffusers: RGB handed over as BGR
    assert [f.generator for f in watermark_findings(as_rgb)] == [sdxl.generator]


def test_unmarked_and_small_images_have_none() -> None:
    assert watermark_findings(textured()) == []
    assert watermark_findings(photo()) == [] and watermark_findings(photo(size=128)) == []
