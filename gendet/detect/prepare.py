"""What a decoder process does with one file: the model input and the file's provenance, from one read.

`ScanTask` is the task the scan's decoder processes (and the Ray engine's decode tasks) run per file.
The pixel path never sees metadata: `decode_image` returns pixels only, and provenance is read from the
same bytes separately (gendet.provenance).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gendet.data.decode import NOT_IMAGE, DecodeError, DecodeLimits, read_file
from gendet.data.preprocess import ImageTransform, Preprocess, decode_for_model, normalize
from gendet.provenance import ProvenanceOptions, read_provenance
from gendet.provenance.container import sniff_format
from gendet.provenance.watermark import available as watermark_available

PROVENANCE_MODES = ("on", "off", "only")
# (model input's uint8 pixels or None, why they were not scored or None, provenance findings as dicts or None)
Prepared = tuple[np.ndarray | None, str | None, list[dict[str, Any]] | None]


def decode_to_pixels(source: str | bytes, pp: Preprocess, limits: DecodeLimits | None = None,
                     formats: tuple[str, ...] | None = None) -> tuple[Image.Image, torch.Tensor]:
    """Decode + eval transform for one file or upload (the scan's and the server's one path): the decoded
    image and the model input as uint8 pixels (`normalize` makes the float input; the model's process does
    that for whole batches, so a decoder process sends a quarter of the bytes); DecodeError with the reason
    for anything wrong with it."""
    try:
        img = decode_for_model(source, pp, limits, formats=formats)
        # eval transforms draw no random numbers; a fixed rng keeps the call signature
        return img, ImageTransform(pp, train=False).pixels(img, np.random.default_rng(0))
    except DecodeError:
        raise
    except Exception as e:  # noqa: BLE001 - one odd file must not end a million-file scan
        raise DecodeError(f"preprocessing failed: {type(e).__name__}: {e}") from None


def prepare_input(path: str, pp: Preprocess, limits: DecodeLimits | None = None) -> torch.Tensor:
    """The normalised float model input for one file."""
    return normalize(decode_to_pixels(path, pp, limits)[1], pp)


def prepare_pixels(path: str | bytes, pp: Preprocess, limits: DecodeLimits | None = None) -> np.ndarray:
    """The model input's uint8 pixels for one file as a numpy array: what a decoder process sends back.
    Pickled by value on purpose: a torch tensor would travel as a shared-memory handle, which breaks if its
    worker dies before the parent has opened it."""
    return decode_to_pixels(path, pp, limits)[1].numpy()


@dataclass(frozen=True)
class ScanTask:
    """One file -> `Prepared`. provenance: "on" (pixels + findings), "off" (pixels only), "only" (findings
    only; pixels are decoded just for the watermark check when `options.watermark`)."""

    provenance: str = "on"
    options: ProvenanceOptions = field(default_factory=ProvenanceOptions)

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCE_MODES:
            raise ValueError(f"provenance must be one of {PROVENANCE_MODES}, got {self.provenance!r}")

    @classmethod
    def from_options(cls, provenance: str = "on", watermark: bool = False,
                     trust_file: str | os.PathLike | None = None) -> ScanTask:
        """The task for `--provenance`, `--watermark` and `--c2pa-trust FILE`; ValueError says what is unusable."""
        if watermark and provenance == "off":
            raise ValueError("--watermark is a provenance check: it needs --provenance on or only")
        if watermark and not watermark_available():
            raise ValueError("--watermark needs the invisible-watermark package: pip install 'gendet[watermark]'")
        trust = None
        if trust_file is not None:
            try:
                trust = Path(trust_file).read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"--c2pa-trust {trust_file}: cannot read ({e})") from None
            if "BEGIN CERTIFICATE" not in trust:
                raise ValueError(f"--c2pa-trust {trust_file}: no PEM certificate in it")
        return cls(provenance, ProvenanceOptions(watermark=watermark, trust_anchors=trust))

    def __call__(self, path: str | bytes, pp: Preprocess, limits: DecodeLimits | None = None) -> Prepared:
        """DecodeError when the file cannot be read at all; a pixel failure is returned with the findings."""
        if self.provenance == "off":
            return prepare_pixels(path, pp, limits), None, None
        data = path if isinstance(path, bytes) else read_file(path, limits or DecodeLimits())
        if self.provenance == "only" and sniff_format(data) is None:
            raise DecodeError("not a recognised image format", kind=NOT_IMAGE)
        image = tensor = error = None
        if self.provenance == "on" or self.options.watermark:
            try:
                if self.provenance == "on":
                    image, tensor = decode_to_pixels(data, pp, limits)
                else:  # pixels for the watermark check only
                    image = decode_for_model(data, pp, limits)
            except DecodeError as e:
                error = e.reason
        findings = read_provenance(data, self.options, image)  # watermarks too when `image` was decoded
        return None if tensor is None else tensor.numpy(), error, [f.to_dict() for f in findings]
