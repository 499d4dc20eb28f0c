"""Reading the images out of a POST /v1/detect body, with the size cap enforced while streaming.

The body is never read past `Limits.max_body_bytes`: a Content-Length over it is refused before
reading, and a chunked body is cut off (413) as soon as the running count passes it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from gendet.serve.inference import Upload
from gendet.serve.limits import ClientError, Limits

ACCEPTED_BODIES = "send multipart/form-data (one file part per image) or application/json {\"images\": [base64, ...]}"


class _BodyTooLarge(Exception):
    pass


def capped_request(request: Request, max_bytes: int) -> Request:
    """A Request over the same connection whose body stream raises once more than `max_bytes` arrived."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > max_bytes
        except ValueError:
            raise ClientError(400, f"invalid Content-Length header {declared!r}") from None
        if too_big:
            raise ClientError(413, f"request body of {declared} bytes exceeds the limit of {max_bytes}")
    seen = 0

    async def receive() -> dict[str, Any]:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise _BodyTooLarge()
        return message

    return Request(request.scope, receive)


async def _multipart(request: Request, limits: Limits) -> list[Upload]:
    try:
        form = await request.form(max_files=limits.max_images, max_fields=64)
    except HTTPException as e:  # Starlette's multipart parser errors arrive as HTTP 400
        detail = str(e.detail)
        if detail.lower().startswith("too many files"):
            raise ClientError(413, f"too many images: at most {limits.max_images} per request") from None
        raise ClientError(400, f"malformed multipart body: {detail}") from None
    except _BodyTooLarge:
        raise
    except Exception as e:  # noqa: BLE001 - the parser's own errors (and a client gone mid-body) are client input
        raise ClientError(400, f"malformed multipart body: {type(e).__name__}: {e}") from None
    uploads, total = [], 0
    try:
        for field_name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                continue  # plain text fields are ignored
            data = await value.read()
            total += len(data)
            if total > limits.max_upload_bytes:
                raise ClientError(413, f"uploaded images exceed the limit of {limits.max_upload_bytes} bytes")
            name = value.filename or f"{field_name or 'image'}-{len(uploads) + 1}"
            uploads.append(Upload(name, data, value.content_type))
    finally:
        await form.close()
    return uploads


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ClientError(400, f"{where}: expected a base64 string, got {type(value).__name__}")
    if value.startswith("data:"):  # data:image/png;base64,....
        _, _, value = value.partition(",")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ClientError(400, f"{where}: invalid base64 ({e})") from None


async def _json(request: Request, limits: Limits) -> list[Upload]:
    body = b"".join([chunk async for chunk in request.stream()])
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ClientError(400, f"invalid JSON body: {e}") from None
    except RecursionError:  # e.g. {"images": [[[[... a few thousand deep: the parser's stack, not the server's bug
        raise ClientError(400, "invalid JSON body: nested too deeply") from None
    if not isinstance(doc, dict) or ("images" not in doc and "image" not in doc):
        raise ClientError(400, 'JSON body must be an object with "images": [base64, ...] (or "image": base64)')
    items = doc["images"] if "images" in doc else [doc["image"]]
    if not isinstance(items, list):
        raise ClientError(400, '"images" must be a list')
    if len(items) > limits.max_images:
        raise ClientError(413, f"too many images: {len(items)} > {limits.max_images} per request")
    uploads, total = [], 0
    for i, item in enumerate(items):
        default = f"image-{i + 1}"
        if isinstance(item, dict):
            name = str(item.get("name") or default)
            data = _b64(item.get("data"), f"images[{i}].data")
        else:
            name, data = default, _b64(item, f"images[{i}]")
        total += len(data)
        if total > limits.max_upload_bytes:
            raise ClientError(413, f"uploaded images exceed the limit of {limits.max_upload_bytes} bytes")
        uploads.append(Upload(name, data, None))
    return uploads


async def read_uploads(request: Request, limits: Limits) -> list[Upload]:
    """Every image in the request, in order; ClientError (400/413/415) for a request that cannot be read."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json"):
        raise ClientError(415, f"content type {kind or 'none'!r} is not accepted: {ACCEPTED_BODIES}")
    capped = capped_request(request, limits.max_body_bytes)
    try:
        uploads = await (_multipart(capped, limits) if kind == "multipart/form-data" else _json(capped, limits))
    except _BodyTooLarge:
        raise ClientError(413, f"request body exceeds the limit of {limits.max_body_bytes} bytes") from None
    if not uploads:
        raise ClientError(400, f"no image in the request: {ACCEPTED_BODIES}")
    return uploads
