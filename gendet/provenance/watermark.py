"""Invisible watermarks of known generators, decoded with `invisible-watermark` (MIT; DWT-DCT method).

Payloads: the Stable Diffusion 1.x reference scripts embed the bytes "StableDiffusionV1", the 2.x
scripts "SDV2" (both on BGR arrays, as the library expects); diffusers' SDXL pipelines embed a fixed
48-bit message, on RGB arrays in its early releases and BGR in later ones, so both orders are tried.
A payload counts as found when at most `max_errors` of its bits differ: the chance that an unmarked
image matches by luck is below 1e-8 for each (binomial tail at p = 1/2), and 0 of the 992 camera
photos of the genuine set match (README).
What survives (the library's README, checked in tests/provenance/test_watermark.py): JPEG re-encoding
yes, a 50 % resize no, a crop mostly no. Images under 256 x 256 pixels cannot carry it and are skipped.
Decoding costs tens of milliseconds per payload and image, so it is opt-in (`--watermark`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from gendet.provenance.findings import WATERMARK, Finding


def _bits(payload: bytes) -> tuple[int, ...]:
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(payload, dtype=np.uint8)))


SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110


@dataclass(frozen=True)
class Payload:
    name: str
    generator: str
    bits: tuple[int, ...]
    max_errors: int
    orders: tuple[str, ...]  # "bgr": the array handed to the encoder was BGR; "rgb": RGB passed as if BGR


PAYLOADS: tuple[Payload, ...] = (
    Payload("StableDiffusionV1", "Stable Diffusion 1.x (reference scripts)", _bits(b"StableDiffusionV1"), 10,
            ("bgr",)),
    Payload("SDV2", "Stable Diffusion 2.x (reference scripts)", _bits(b"SDV2"), 0, ("bgr",)),
    Payload("SDXL 48-bit", "Stable Diffusion XL (diffusers / generative-models)",
            tuple(int(b) for b in bin(SDXL_MESSAGE)[2:]), 2, ("rgb", "bgr")),
)
MIN_PIXELS = 256 * 256


def available() -> bool:
    try:
        import imwatermark  # noqa: F401
    except ImportError:
        return False
    return True


def watermark_findings(image: Image.Image) -> list[Finding]:
    """A finding per known payload found in `image` (8-bit RGB, as decoded); [] when none is."""
    try:
        from imwatermark import WatermarkDecoder
    except ImportError:
        return [Finding(WATERMARK, "unknown", "embedded", "invisible watermark not checked",
                        error="invisible-watermark is not installed (pip install 'gendet[watermark]')")]
    w, h = image.size
    if w * h < MIN_PIXELS:
        return []
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    arrays = {"rgb": rgb, "bgr": np.ascontiguousarray(rgb[:, :, ::-1])}
    out = []
    for p in PAYLOADS:
        for order in p.orders:
            bits = WatermarkDecoder("bits", len(p.bits)).decode(arrays[order], "dwtDct")
            errors = int(sum(int(a) != b for a, b in zip(bits, p.bits, strict=True)))
            if errors <= p.max_errors:
                out.append(Finding(WATERMARK, "generated", "embedded",
                                   f"invisible watermark {p.name!r} ({len(p.bits) - errors} of {len(p.bits)} bits)",
                                   generator=p.generator))
                break
    return out
