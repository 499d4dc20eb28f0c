"""Samples -> scores: the batched inference path shared by eval, training validation and reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gendet.data.dataset import ImageDataset, collate_items
from gendet.data.preprocess import ImageOp, ImageTransform, Preprocess
from gendet.data.sample import Sample
from gendet.models.base import Detector


@dataclass
class Predictions:
    """Scores for the samples that decoded, plus (path, reason) for those that did not."""

    samples: list[Sample]
    scores: np.ndarray  # P(generated), aligned with `samples`
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([-1 if s.label is None else s.label for s in self.samples], dtype=np.int64)

    @property
    def generators(self) -> list[str]:
        return [s.generator for s in self.samples]

    def subset(self, generator: str) -> Predictions:
        keep = [i for i, s in enumerate(self.samples) if s.generator == generator]
        return Predictions([self.samples[i] for i in keep], self.scores[keep], [])


def make_loader(
    dataset: ImageDataset, batch_size: int, workers: int, shuffle: bool = False,
    generator: torch.Generator | None = None, sampler=None,
) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=workers, collate_fn=collate_items, generator=generator,
        persistent_workers=False, pin_memory=False,
    )


@torch.inference_mode()
def predict(
    detector: Detector,
    samples: Sequence[Sample],
    pp: Preprocess,
    degradation: ImageOp | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool | str = False,
) -> Predictions:
    """Score `samples` with `detector` (eval mode). Undecodable files land in `errors`."""
    samples = list(samples)
    ds = ImageDataset(samples, ImageTransform(pp, train=False, degradation=degradation), seed=seed)
    loader = make_loader(ds, batch_size, workers)
    detector.eval()
    device = torch.device(device)
    scores = np.full(len(samples), np.nan, dtype=np.float64)
    ok = np.zeros(len(samples), dtype=bool)
    errors: list[tuple[str, str]] = []
    desc = progress if isinstance(progress, str) else "scoring"
    for batch in tqdm(loader, desc=desc, disable=not progress, unit="batch", leave=False):
        errors.extend(batch["errors"])
        if batch["image"].numel() == 0:
            continue
        image = batch["image"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            prob = detector({"image": image})["prob"]
        idx = batch["index"].numpy()
        scores[idx] = prob.float().cpu().numpy()
        ok[idx] = True
    keep = np.flatnonzero(ok)
    return Predictions([samples[i] for i in keep], scores[keep], errors)
