"""Response models and the request-body description, for the OpenAPI docs at /docs.

The body of POST /v1/detect is read by hand (size-capped stream), so its schema is declared here
rather than inferred from function parameters.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Region(BaseModel):
    name: str
    box: list[int] = Field(description="x0, y0, x1, y1 in model-input pixels (end exclusive)")
    occlusion_delta: float = Field(description="P(generated) original - with this region occluded")
    relevance_share: float = Field(description="share of the heat map inside the region")


class Explanation(BaseModel):
    text: str = Field(description="evidence text built from numbers measured on this image")
    model_text: str | None = None
    score: float | None = None
    relevance_source: str = Field(description="'attention' (the model's own) or 'gradient' (input x gradient)")
    heatmap_png: str = Field(description="base64 RGBA PNG of the relevance map at model-input size")
    input_png: str = Field(description="base64 PNG of the model input (after resize, crop and alignment)")
    input_size: list[int]
    top_regions: list[Region]
    notes: list[str]


class ProvenanceFinding(BaseModel):
    signal: str = Field(description="c2pa, iptc-digital-source-type, iptc-ai-system, generator-metadata, "
                        "software-tag, invisible-watermark, camera-exif or metadata-container")
    says: str = Field(description="generated | edited | captured | unknown")
    strength: str = Field(description="signed (trusted C2PA) | declared (metadata, untrusted C2PA) | embedded "
                          "(watermark) | heuristic (never decisive)")
    detail: str
    error: str | None = Field(None, description="set when the signal is present but unreadable or invalid")
    generator: str | None = None
    model: str | None = None


class DetectResult(BaseModel):
    name: str = Field(description="the upload's file name (or image-N)")
    score: float | None = Field(description="P(generated) in [0, 1]; null on error")
    label: str | None = Field(description="'fake' iff score >= threshold, else 'real'; null on error")
    threshold: float
    model: str
    model_version: str | None = Field(None, description="sha256:<12 hex> of the weights file")
    error: str | None = Field(description="why this image was not scored, else null")
    status: int = Field(description="200, or the 4xx/5xx this image alone would get")
    verdict: str | None = Field(None, description="generated | edited | real: a signed, declared or embedded "
                                "provenance finding decides, else the pixel label; null on error")
    reason: str | None = Field(None, description="why the verdict is what it is")
    conflict: str | None = Field(None, description="where provenance and pixels disagree, else null")
    provenance: list[ProvenanceFinding] | None = Field(None, description="what the file says about itself; null "
                                                       "when the server reads no provenance")
    explanation: Explanation | None = None
    explanation_error: str | None = None


class DetectResponse(BaseModel):
    results: list[DetectResult]
    detail: str | None = Field(None, description="when no image was scored: the first image's error")


class ErrorResponse(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    model: str
    device: str
    queue: int
    uptime_s: float
    batching: dict[str, Any]
    pipeline: dict[str, Any] = Field(description="requests, images and explanations in the pipeline; rejected (503), "
                                     "cancelled (client left) and decoder processes replaced so far")


_B64_IMAGE = {"type": "string", "format": "byte", "description": "base64 image bytes (a data: URL is accepted)"}
DETECT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "description": "one or more image files (every file part is scored, whatever its field name)",
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {"type": "array", "items": {"oneOf": [_B64_IMAGE, {
                            "type": "object", "properties": {"data": _B64_IMAGE, "name": {"type": "string"}},
                            "required": ["data"]}]}},
                        "image": _B64_IMAGE,
                    },
                }
            },
        },
    }
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "malformed request, or no image could be decoded"},
    401: {"model": ErrorResponse, "description": "API key missing or wrong (only when the server has one)"},
    413: {"model": ErrorResponse, "description": "upload, pixel count or image count over the limit"},
    415: {"model": ErrorResponse, "description": "not an image, a format not accepted, or a wrong content type"},
    503: {"model": ErrorResponse, "description": "queue full; retry later"},
}
