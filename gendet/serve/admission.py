"""Admission control: the whole request pipeline (body, decoding, batching, explanation) is bounded.

Three counters, each checked without waiting (a full pipeline answers at once, it does not queue
without bound): requests being read or processed, images in the pipeline, explanations waiting or
running. A refusal is a 503 ClientError whose Retry-After is the measured mean time an image (or
an explanation) spends in the pipeline: about when the oldest work in it will have left.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from gendet.serve.limits import ClientError, Limits

_EWMA = 0.2  # weight of the newest duration in the running means


class Admission:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.requests = self.images = self.explains = 0
        self.rejected = 0
        # mean seconds an image / an explanation spends in the pipeline (first guesses, updated as work completes)
        self.image_s, self.explain_s = 0.5, 5.0

    def _busy(self, what: str, retry_after_s: float) -> ClientError:
        self.rejected += 1
        return ClientError(503, f"server busy: {what}; retry later",
                           retry_after=max(1, min(120, math.ceil(retry_after_s))))

    @contextmanager
    def request(self) -> Iterator[None]:
        """One request from before its body is read until its response."""
        if self.requests >= self.limits.max_requests:
            raise self._busy(f"{self.requests} requests in progress (limit {self.limits.max_requests})",
                             self.image_s)
        self.requests += 1
        try:
            yield
        finally:
            self.requests -= 1

    @contextmanager
    def work(self, n_images: int, n_explain: int = 0) -> Iterator[None]:
        """n images, n_explain of them explained, through decoding, scoring and explanation."""
        cap = self.limits.max_queue
        if self.images + n_images > cap:
            raise self._busy(f"{self.images} images in the pipeline (limit {cap})", self.image_s)
        if n_explain and self.explains + n_explain > self.limits.max_explain_queue:
            raise self._busy(f"{self.explains} explanations waiting (limit {self.limits.max_explain_queue})",
                             self.explain_s)
        self.images += n_images
        self.explains += n_explain
        try:
            yield
        finally:
            self.images -= n_images
            self.explains -= n_explain

    def timed_image(self, seconds: float) -> None:
        self.image_s += _EWMA * (seconds - self.image_s)

    def timed_explain(self, seconds: float) -> None:
        self.explain_s += _EWMA * (seconds - self.explain_s)

    def to_dict(self) -> dict:
        return {"requests": self.requests, "images": self.images, "explanations": self.explains,
                "rejected": self.rejected, "seconds_per_image": round(self.image_s, 4),
                "seconds_per_explanation": round(self.explain_s, 3)}
