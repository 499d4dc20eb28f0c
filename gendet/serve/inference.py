"""The served model: upload -> tensor (the same transform as `gendet detect`), batched scores, explanations.

All model work runs in one dedicated thread (`model_pool`), batches and explanations alike, so the
detector is never used by two threads at once; decoding runs in a separate small pool.
"""

from __future__ import annotations

import base64
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from gendet.data.preprocess import ImageTransform
from gendet.detect.model import ScanModel
from gendet.detect.pipeline import score_batch
from gendet.explain.evidence import explain_image
from gendet.explain.overlay import heatmap_png
from gendet.serve.limits import ClientError, Limits, decode_upload


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


class ServedModel:
    """A ScanModel plus the thread pools and transforms the server uses."""

    def __init__(self, model: ScanModel, device: torch.device, decode_threads: int = 2,
                 explain_grid: int = 4, explain_top: int = 3) -> None:
        self.model, self.device = model, device
        self.transform = ImageTransform(model.preprocess, train=False)
        self.model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gendet-model")
        self.decode_pool = ThreadPoolExecutor(max_workers=max(1, decode_threads), thread_name_prefix="gendet-decode")
        self.explain_grid = min(explain_grid, model.preprocess.size)
        self.explain_top = explain_top

    def close(self) -> None:
        self.model_pool.shutdown(wait=True, cancel_futures=True)
        self.decode_pool.shutdown(wait=True, cancel_futures=True)

    # -- decode pool ---------------------------------------------------------
    def prepare(self, upload: Upload, limits: Limits) -> tuple[Image.Image, torch.Tensor]:
        """Decode and transform one upload; ClientError (4xx) for anything wrong with it."""
        image = decode_upload(upload.data, limits, upload.name, upload.content_type)
        try:
            # eval transforms draw no random numbers; the rng only fills the call signature
            tensor = self.transform(image, np.random.default_rng(0))
        except Exception as e:  # noqa: BLE001 - an image the transform cannot take is still the upload's problem
            raise ClientError(400, f"{upload.name}: preprocessing failed: {type(e).__name__}: {e}") from None
        return image, tensor

    # -- model pool ----------------------------------------------------------
    def run_batch(self, batch: torch.Tensor) -> np.ndarray:
        return score_batch(self.model, batch, self.device)

    def warm_up(self) -> None:
        """One forward at start-up, so the first request does not pay for lazy initialisation."""
        s = self.model.preprocess.size
        self.run_batch(torch.zeros(1, 3, s, s))

    def explain(self, image: Image.Image) -> dict[str, Any]:
        """Evidence for one decoded image: text, heat map and model-input PNGs (base64), top regions."""
        m = self.model
        ev = explain_image(m.detector, image, m.preprocess, m.threshold, threshold_source=m.threshold_source,
                           grid=self.explain_grid, top=self.explain_top, model_name=m.name)
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
