"""What the server accepts, and the checks that turn a bad upload into a clear 4xx instead of a 500.

Order for one uploaded file: declared content type (415) -> size (413) -> header sniff: is it an
image at all (415), an allowed format (415), within the pixel limit (413) -> full decode through
`gendet.data.decode.decode_image` (400 with the decoder's reason). The sniff reads only the header
(Pillow's lazy open), so a decompression bomb is refused before a single pixel is allocated.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field

from PIL import Image, UnidentifiedImageError

from gendet.data.decode import DecodeError, decode_image

MB = 1024 * 1024
# Pillow format names. MPO is what Pillow calls the multi-picture JPEGs many phone cameras write.
DEFAULT_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Declared part types that say nothing about the content; anything else that is not image/* is refused.
NEUTRAL_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


class ClientError(Exception):
    """A request or upload the server refuses: `status` is a 4xx code, `reason` is shown to the user."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Limits:
    """Per-request limits (all configurable from `gendet serve`).

    max_upload_bytes: image bytes in one request (all files together; base64 counted decoded).
    max_pixels: width x height of one image. max_images: files in one request.
    formats: Pillow format names accepted. max_queue: images waiting for the model before
    new ones get 503 (back-pressure instead of unbounded memory).
    """

    max_upload_bytes: int = 20 * MB
    max_pixels: int = 40_000_000
    max_images: int = 16
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS)
    max_queue: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_images", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        formats = tuple(f.upper() for f in self.formats)
        if not formats:
            raise ValueError("at least one image format must be allowed")
        object.__setattr__(self, "formats", formats)

    @property
    def max_body_bytes(self) -> int:
        """The raw request body cap: base64 (JSON) needs 4/3 of the image bytes, plus room for headers/fields."""
        return self.max_upload_bytes * 4 // 3 + 64 * 1024

    def to_dict(self) -> dict:
        return asdict(self)


def check_declared_type(content_type: str | None, name: str) -> None:
    """415 when a part says it is something other than an image (e.g. text/plain)."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in NEUTRAL_TYPES or declared.startswith("image/"):
        return
    raise ClientError(415, f"{name}: declared content type {declared!r} is not an image type")


def sniff(data: bytes, limits: Limits, name: str) -> tuple[str, tuple[int, int]]:
    """(Pillow format, (w, h)) from the header only; ClientError for non-images, other formats, too many pixels."""
    if not data:
        raise ClientError(400, f"{name}: empty upload (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = str(img.format or "").upper(), img.size
    except UnidentifiedImageError:
        raise ClientError(415, f"{name}: not a recognised image format") from None
    except Image.DecompressionBombError:
        raise ClientError(413, f"{name}: image too large (decompression bomb refused; limit "
                               f"{limits.max_pixels} pixels)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as e:
        raise ClientError(400, f"{name}: cannot read the image header: {type(e).__name__}: {e}") from None
    if fmt not in limits.formats:
        raise ClientError(415, f"{name}: format {fmt or 'unknown'} is not accepted "
                               f"(accepted: {', '.join(limits.formats)})")
    w, h = size
    if w * h > limits.max_pixels:
        raise ClientError(413, f"{name}: image too large: {w}x{h} pixels exceeds the limit of {limits.max_pixels}")
    return fmt, size


def decode_upload(data: bytes, limits: Limits, name: str, content_type: str | None = None) -> Image.Image:
    """One uploaded file -> 8-bit RGB (the same decoder as everywhere in gendet), or ClientError (4xx)."""
    check_declared_type(content_type, name)
    if len(data) > limits.max_upload_bytes:
        raise ClientError(413, f"{name}: {len(data)} bytes exceeds the upload limit of {limits.max_upload_bytes}")
    sniff(data, limits, name)
    try:
        return decode_image(data, max_pixels=limits.max_pixels)
    except DecodeError as e:
        raise ClientError(400, f"{name}: {e.reason}") from None
    except Exception as e:  # noqa: BLE001 - a Pillow failure the decoder does not list is still the upload's fault
        raise ClientError(400, f"{name}: cannot decode: {type(e).__name__}: {e}") from None
