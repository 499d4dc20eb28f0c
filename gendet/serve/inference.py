"""The served model: upload -> tensor (the same decoder and transform as `gendet detect`), batched scores,
explanations.

All model work runs in one dedicated thread (`model_pool`), batches and explanations alike, so the
detector is never used by two threads at once. Decoding runs in decoder processes (`DecodePool`):
an upload that runs past the decode time budget or kills its process costs only itself (422), and
decoding a cancelled request stops with it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from gendet.data.decode import DecodeLimits
from gendet.data.decode_pool import DecodePool
from gendet.data.preprocess import Preprocess
from gendet.detect.model import ScanModel
from gendet.detect.pipeline import BatchBuffers, decode_to_pixels, score_batch
from gendet.explain.evidence import centre_region, explain_image
from gendet.explain.overlay import heatmap_png
from gendet.provenance import ProvenanceOptions, read_provenance
from gendet.serve.limits import Limits, check_upload, upload_error


@dataclass
class Upload:
    """One image as received: a display name, its bytes and the declared content type (if any)."""

    name: str
    data: bytes
    content_type: str | None = None


def png_base64(img: Image.Image | np.ndarray) -> str:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def prepare_upload(data: bytes, pp: Preprocess, limits: DecodeLimits, formats: tuple[str, ...],
                   keep_image: bool, provenance: ProvenanceOptions | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]] | None]:
    """In a decoder process: bytes -> (model input's uint8 pixels, the centre crop's region if `keep_image`:
    all an explanation reads, given the batch's score; 260 x 260 pixels instead of a 36 Mpx upload;
    the provenance findings as dicts, None when `provenance` is None).

    Raises DecodeError; arrays travel back by value (see gendet.detect.prepare.prepare_pixels)."""
    image, tensor = decode_to_pixels(data, pp, limits, formats)
    kept = np.asarray(centre_region(image, pp)) if keep_image else None
    findings = None if provenance is None else [f.to_dict() for f in read_provenance(data, provenance, image)]
    return tensor.numpy(), kept, findings


class ServedModel:
    """A ScanModel plus the model thread and the decoder processes the server uses."""

    def __init__(self, model: ScanModel, device: torch.device, decode_workers: int = 2,
                 explain_grid: int = 4, explain_top: int = 3, decode_timeout_s: float = 10.0,
                 provenance: ProvenanceOptions | None = None) -> None:
        """provenance: how uploads' provenance is read (None: not read)."""
        self.model, self.device, self.provenance = model, device, provenance
        self.model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gendet-model")
        self.buffers = BatchBuffers()  # used by the one model thread only
        # the uploads' task (prepare_upload) lives here: imported once in the forkserver, not by each new decoder
        self.decode_pool = DecodePool(max(1, decode_workers), decode_timeout_s, preload=(__name__,))
        self.explain_grid = min(explain_grid, model.preprocess.size)
        self.explain_top = explain_top

    def close(self) -> None:
        self.model_pool.shutdown(wait=True, cancel_futures=True)
        self.decode_pool.close(wait=False)

    # -- decoder processes ---------------------------------------------------
    async def prepare(self, upload: Upload, limits: Limits, keep_image: bool
                      ) -> tuple[Image.Image | None, torch.Tensor, list[dict[str, Any]] | None]:
        """Decode and transform one upload and read its provenance, in a decoder process; ClientError (4xx) for
        anything wrong with it. Cancelling the caller stops the decode (its process is replaced)."""
        check_upload(upload.data, limits, upload.name, upload.content_type)
        future = self.decode_pool.submit(prepare_upload, upload.data, self.model.preprocess, limits.decode_limits,
                                         limits.formats, keep_image, self.provenance)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self.decode_pool.cancel(future)  # the client left: stop its decode
            raise
        except Exception:  # noqa: BLE001 - outcome() below turns every failure into its reason
            pass
        value, error = self.decode_pool.outcome(future)
        if error is not None:
            raise upload_error(error, upload.name)
        array, kept, findings = value
        return (None if kept is None else Image.fromarray(kept)), torch.from_numpy(array), findings

    # -- model pool ----------------------------------------------------------
    def run_batch(self, tensors: list[torch.Tensor]) -> np.ndarray:
        """Scores for one batch of model inputs (uint8 pixels from `prepare`), stacked into the reused buffers
        (by score_batch, or chunk by chunk by an engine that stacks them itself)."""
        return score_batch(self.model, tensors, self.device, self.buffers)

    def warm_up(self) -> None:
        """One forward at start-up, so the first request does not pay for lazy initialisation."""
        pp = self.model.preprocess
        shape = (1, pp.crops, 3, pp.size, pp.size) if pp.crops > 1 else (1, 3, pp.size, pp.size)
        self.run_batch([torch.zeros(*shape[1:], dtype=torch.uint8)])

    def explain(self, image: Image.Image, score: float | None = None) -> dict[str, Any]:
        """Evidence for one image (its centre region when `score`, the batch's verdict, is given): text, heat map
        and model-input PNGs (base64), top regions."""
        m = self.model
        if not isinstance(m.detector, torch.nn.Module):
            raise RuntimeError("explanations need the model's gradients: serve with --engine torch for ?explain=true")
        ev = explain_image(m.detector, image, m.preprocess, m.threshold, threshold_source=m.threshold_source,
                           grid=self.explain_grid, top=self.explain_top, model_name=m.name, score=score)
        return {
            "text": ev.text,
            "model_text": ev.model_text,
            "score": ev.prob if math.isfinite(ev.prob) else None,
            "relevance_source": ev.relevance_source,
            "heatmap_png": base64.b64encode(heatmap_png(ev)).decode("ascii"),
            "input_png": png_base64(ev.image),
            "input_size": list(ev.input_size),
            "top_regions": [
                {"name": r.name, "box": list(r.box), "occlusion_delta": r.occlusion_delta,
                 "relevance_share": r.relevance_share}
                for r in ev.top_regions
            ],
            "notes": list(ev.notes),
        }
