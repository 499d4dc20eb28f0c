"""`gendet.load()` -> a `Model` whose `predict` and `scan` return typed `Verdict`s.

Files and bytes get the scan's decoding, limits and provenance (the verdict rule of `gendet detect`);
in-memory images (PIL, numpy, tensors) carry no file, so they have no provenance and `verdict` is the
pixel label. A bad input is a Verdict with `error` set, never an exception (a wrong type raises TypeError).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from PIL import Image

from gendet.data.decode import DecodeLimits
from gendet.data.preprocess import ImageTransform
from gendet.detect.inputs import iter_inputs
from gendet.detect.model import ScanModel, is_onnx_file, load_scan_model, resolve_device
from gendet.detect.pipeline import Decoded, iter_record_batches, run_task, score_entries
from gendet.detect.prepare import ScanTask
from gendet.detect.writers import Record
from gendet.provenance import Finding

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Verdict:
    """One image's answer. score: P(generated) from the pixels (None when not scored); label: "fake"/"real"
    from score >= threshold; verdict: "generated" | "edited" | "real" | "unknown" after provenance
    (gendet.provenance.verdict); error: why the image was not scored."""

    source: str
    score: float | None
    label: str | None
    threshold: float
    verdict: str | None
    reason: str | None
    conflict: str | None = None
    provenance: tuple[Finding, ...] | None = None
    error: str | None = None
    model: str = ""
    model_version: str | None = None

    @property
    def is_generated(self) -> bool:
        return self.verdict in ("generated", "edited")

    @classmethod
    def from_record(cls, record: Record) -> Verdict:
        findings = None if record.provenance is None else tuple(Finding.from_dict(d) for d in record.provenance)
        return cls(record.path, record.score, record.label, record.threshold, record.verdict, record.reason,
                   record.conflict, findings, record.error, record.model, record.model_version)


def _to_pil(image: Image.Image | np.ndarray | torch.Tensor) -> Image.Image:
    """An in-memory image as 8-bit RGB: PIL as is; arrays H x W (x 3|4) uint8 or float in [0, 1]; tensors
    (3, H, W) or (H, W, 3), uint8 or float in [0, 1]."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[-1] not in (3, 4):
            t = t.permute(1, 2, 0)
        image = t.numpy()
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError("float images must be finite and in [0, 1]")
        arr = (arr * 255 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"an image array must be H x W or H x W x 3/4, got shape {arr.shape}")
    return Image.fromarray(arr).convert("RGB")


class Model:
    """A loaded detector (see the module docstring). `engine`: "torch" or "onnx"."""

    def __init__(self, scan_model: ScanModel, device: torch.device, task: ScanTask,
                 limits: DecodeLimits | None = None) -> None:
        self.scan_model, self.device, self.task, self.limits = scan_model, device, task, limits or DecodeLimits()

    @property
    def threshold(self) -> float:
        return self.scan_model.threshold

    @property
    def name(self) -> str:
        return self.scan_model.name

    def __repr__(self) -> str:
        m = self.scan_model
        return f"gendet.Model({m.name!r}, version={m.version!r}, threshold={m.threshold:.4g}, device={self.device})"

    def predict(self, images: ImageLike | Sequence[ImageLike], batch_size: int = 16) -> Verdict | list[Verdict]:
        """One Verdict for one input, a list for a list (in order)."""
        if isinstance(images, list | tuple):
            return [v for i in range(0, len(images), batch_size) for v in self._predict(images[i:i + batch_size])]
        return self._predict([cast(ImageLike, images)])[0]

    def _predict(self, items: Sequence[ImageLike]) -> list[Verdict]:
        entries: list[Decoded] = []
        pp = self.scan_model.preprocess
        transform = ImageTransform(pp, train=False)
        for k, item in enumerate(items):
            if isinstance(item, str | os.PathLike | bytes):
                source = item if isinstance(item, bytes) else str(item)
                name = f"bytes-{k}" if isinstance(item, bytes) else str(item)
                array, error, provenance = run_task(self.task, source, pp, self.limits)
                entries.append((name, None if array is None else torch.from_numpy(array), error, provenance))
            elif isinstance(item, Image.Image | np.ndarray | torch.Tensor):
                try:
                    entries.append((f"image-{k}", transform.pixels(_to_pil(item), np.random.default_rng(0)), None,
                                    None))
                except (ValueError, TypeError) as e:
                    entries.append((f"image-{k}", None, str(e), None))
            else:
                raise TypeError(f"predict takes paths, bytes, PIL images, numpy arrays or tensors, not "
                                f"{type(item).__name__}")
        self.scan_model.detector.eval()
        return [Verdict.from_record(r) for r in score_entries(self.scan_model, entries, self.device)]

    def scan(self, inputs: Iterable[str | os.PathLike], workers: int = 0, batch_size: int = 32,
             recursive: bool = True, threads: int | str | None = "auto") -> Iterator[Verdict]:
        """Verdicts for files, folders and globs (as `gendet detect` expands them), in order, streamed; decoding
        in `workers` processes."""
        specs = [str(p) for p in inputs]
        for records in iter_record_batches(iter_inputs(specs, recursive=recursive), self.scan_model,
                                           batch_size=batch_size, workers=workers, device=self.device,
                                           threads=threads, limits=self.limits, task=self.task):
            yield from (Verdict.from_record(r) for r in records)


def load(model: str | os.PathLike | None = None, *, device: str = "auto", engine: str = "torch",
         threshold: str | float | None = None, provenance: str = "on", watermark: bool = False,
         c2pa_trust: str | os.PathLike | None = None) -> Model:
    """The shipped default model (None), a shipped name ("default", "fast"), a checkpoint directory, or (engine
    "onnx") an exported .onnx file. provenance "on" | "off"; see `gendet detect --help` for the rest."""
    dev = resolve_device(device)
    if engine == "onnx" or is_onnx_file(model):
        from gendet.detect.onnx_model import load_onnx_model

        scan_model = load_onnx_model(model, dev, threshold)
    elif engine == "torch":
        scan_model = load_scan_model(model, dev, threshold)
    else:
        raise ValueError(f"engine must be 'torch' or 'onnx', got {engine!r}")
    if provenance not in ("on", "off"):
        raise ValueError(f"provenance must be 'on' or 'off', got {provenance!r}")
    task = ScanTask.from_options(provenance, watermark, c2pa_trust)
    return Model(scan_model, dev, task)


__all__ = ["ImageLike", "Model", "Verdict", "load"]
