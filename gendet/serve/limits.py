"""What the server accepts, and the checks that turn a bad upload into a clear 4xx (or 503) instead of a 500.

Order for one uploaded file: declared content type (415) -> size (413) -> then, in a decoder
process, `gendet.data.decode.decode_image` with the server's `DecodeLimits`: not an image (415),
a format not accepted (415), too many pixels (413), a structure or aspect limit, a decode that
ran out of time or killed its process (422), corrupt data (400). The file is parsed once, and the
size and structure checks run before a single pixel is allocated.

Back-pressure: requests in the pipeline (`max_requests`), images in it (`max_queue`) and
explanations waiting (`max_explain_queue`) are bounded; past a bound the answer is 503 with
Retry-After, never unbounded memory or latency.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, replace

from gendet.data.decode import (
    CORRUPT,
    FORMAT,
    LIMIT,
    NOT_IMAGE,
    TIMEOUT,
    TOO_LARGE,
    UNREADABLE,
    WORKER_DIED,
    DecodeError,
    DecodeLimits,
)

MB = 1024 * 1024
# Pillow format names. MPO is what Pillow calls the multi-picture JPEGs many phone cameras write.
DEFAULT_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Declared part types that say nothing about the content; anything else that is not image/* is refused.
NEUTRAL_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


class ClientError(Exception):
    """A request or upload the server refuses: `status` is a 4xx code (or 503 when busy), `reason` is shown
    to the user, `retry_after` (seconds) goes into a Retry-After header."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.retry_after = status, reason, retry_after


# DecodeError kind -> HTTP status
STATUS_BY_KIND = {NOT_IMAGE: 415, FORMAT: 415, TOO_LARGE: 413, LIMIT: 422, TIMEOUT: 422, WORKER_DIED: 422,
                  CORRUPT: 400, UNREADABLE: 400}


def upload_error(e: DecodeError, name: str) -> ClientError:
    return ClientError(STATUS_BY_KIND.get(e.kind, 400), f"{name}: {e.reason}")


@dataclass(frozen=True)
class Limits:
    """Per-request limits (all configurable from `gendet serve`).

    max_upload_bytes: image bytes in one request (all files together; base64 counted decoded).
    max_pixels: width x height of one image. max_images: files in one request.
    formats: Pillow format names accepted. max_queue: images in the pipeline (decoding, waiting for
    the model, being scored) before new requests get 503. max_requests: requests being read or
    processed at once (each may hold a body of up to max_body_bytes) before 503.
    max_explain_queue: ?explain=true images waiting for or getting an explanation before 503.
    decode: the decode budgets (time, structure, aspect ratio; max_pixels and the byte cap above
    override its own).
    """

    max_upload_bytes: int = 20 * MB
    max_pixels: int = 40_000_000
    max_images: int = 16
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS)
    max_queue: int = 128
    max_requests: int = 32
    max_explain_queue: int = 4
    decode: DecodeLimits = field(default_factory=DecodeLimits)

    def __post_init__(self) -> None:
        if isinstance(self.decode, dict):
            object.__setattr__(self, "decode", DecodeLimits(**self.decode))
        for name in ("max_upload_bytes", "max_pixels", "max_images", "max_queue", "max_requests",
                     "max_explain_queue"):
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

    @functools.cached_property
    def decode_limits(self) -> DecodeLimits:
        """The decode budgets with this server's pixel and byte caps (built once: every upload asks for them)."""
        return replace(self.decode, max_pixels=self.max_pixels, max_file_bytes=self.max_upload_bytes)

    def to_dict(self) -> dict:
        return asdict(self)


def check_declared_type(content_type: str | None, name: str) -> None:
    """415 when a part says it is something other than an image (e.g. text/plain)."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in NEUTRAL_TYPES or declared.startswith("image/"):
        return
    raise ClientError(415, f"{name}: declared content type {declared!r} is not an image type")


def check_upload(data: bytes, limits: Limits, name: str, content_type: str | None = None) -> None:
    """The checks that need no decoding: declared type (415), empty (400), byte size (413)."""
    check_declared_type(content_type, name)
    if not data:
        raise ClientError(400, f"{name}: empty upload (0 bytes)")
    if len(data) > limits.max_upload_bytes:
        raise ClientError(413, f"{name}: {len(data)} bytes exceeds the upload limit of {limits.max_upload_bytes}")


@dataclass(frozen=True)
class ConnectionGuards:
    """Per-connection read timeouts and the connection limit (enforced by serve.protocol under uvicorn)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 512

    def __post_init__(self) -> None:
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0 or self.max_connections < 1:
            raise ValueError(f"connection guards must be positive, got {self}")

    def to_dict(self) -> dict:
        return asdict(self)
