"""torch Dataset over Samples: decode -> transform, with per-file errors kept, not raised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from gendet.data.decode import DecodeError, decode_image
from gendet.data.preprocess import ImageTransform
from gendet.data.sample import Sample


def sample_seed(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Per-sample RNG: depends only on (seed, epoch, index), never on worker or order."""
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]))


class ImageDataset(Dataset):
    """Items are dicts: image (C,H,W float tensor or None), label (-1 if unknown), index, path, error."""

    def __init__(self, samples: Sequence[Sample], transform: ImageTransform, seed: int = 0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        item: dict[str, Any] = {
            "index": index,
            "path": str(s.path),
            "label": -1 if s.label is None else int(s.label),
            "image": None,
            "error": None,
        }
        try:
            img = decode_image(s.path)
            item["image"] = self.transform(img, sample_seed(self.seed, self.epoch, index))
        except DecodeError as e:
            item["error"] = e.reason
        except Exception as e:  # noqa: BLE001 - a transform bug on one file must not kill a 10k-file run
            item["error"] = f"preprocessing failed: {type(e).__name__}: {e}"
        return item


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good items; keep the failed ones as (path, reason) so nothing is lost."""
    good = [it for it in items if it["error"] is None]
    batch: dict[str, Any] = {
        "errors": [(it["path"], it["error"]) for it in items if it["error"] is not None],
        "path": [it["path"] for it in good],
        "index": torch.tensor([it["index"] for it in good], dtype=torch.long),
        "label": torch.tensor([it["label"] for it in good], dtype=torch.long),
    }
    batch["image"] = torch.stack([it["image"] for it in good]) if good else torch.empty(0)
    return batch
