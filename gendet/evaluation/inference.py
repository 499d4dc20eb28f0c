"""Samples -> scores: the batched inference path shared by eval, training validation and reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gendet.data.dataset import ImageDataset, collate_items
from gendet.data.preprocess import ImageOp, ImageTransform, Preprocess
from gendet.data.sample import Sample
from gendet.lazy_import import file_sha256
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
    dedupe_files: bool = False,
    dataset_cls: Callable[..., Dataset] = ImageDataset,
) -> Predictions:
    """Score `samples` with `detector` (eval mode). Undecodable files land in `errors`.

    dataset_cls: how samples are read (ImageDataset: files; the shard reader for tar shards).
    dedupe_files: score byte-identical files once (GenImage-style layouts repeat the same real
    images under every subset); only without a degradation, whose randomness is per index.
    """
    samples = list(samples)
    if dedupe_files and degradation is None:
        return _predict_unique_files(detector, samples, pp, batch_size, workers, device, seed, progress)
    ds = dataset_cls(samples, ImageTransform(pp, train=False, degradation=degradation), seed=seed)
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


def _content_key(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return f"unreadable:{path}"  # keeps its own record, and predict() reports why


def _predict_unique_files(detector: Detector, samples: list[Sample], pp: Preprocess, batch_size: int, workers: int,
                          device: str | torch.device, seed: int, progress: bool | str) -> Predictions:
    keys = [_content_key(s.path) for s in samples]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    unique = [samples[i] for i in first.values()]
    preds = predict(detector, unique, pp, batch_size=batch_size, workers=workers, device=device, seed=seed,
                    progress=progress)
    by_path = {str(s.path): float(sc) for s, sc in zip(preds.samples, preds.scores, strict=True)}
    reason_of = dict(preds.errors)
    out_samples, out_scores, errors = [], [], []
    for s, k in zip(samples, keys, strict=True):
        rep = str(samples[first[k]].path)
        if rep in by_path:
            out_samples.append(s)
            out_scores.append(by_path[rep])
        else:
            errors.append((str(s.path), reason_of.get(rep, "not scored")))
    return Predictions(out_samples, np.asarray(out_scores, dtype=np.float64), errors)
