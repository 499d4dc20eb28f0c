"""torch Dataset over Samples: decode -> transform, with per-file errors kept, not raised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gendet.data.decode import DecodeError, decode_image
from gendet.data.manipulations.codes import SOURCE_GENERATED, SOURCE_REAL, decode_source_map
from gendet.data.preprocess import ImageTransform, decode_for_model, to_tensor
from gendet.data.sample import Sample


def sample_seed(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Per-sample RNG: depends only on (seed, epoch, index), never on worker or order."""
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]))


class ImageDataset(Dataset):
    """Items are dicts: image (C,H,W float tensor or None), label (-1 if unknown), index, path, error.

    When any sample has a mask file, every item also carries its pixel labels at the model's input
    size (GAMMA): mask (1,H,W) float, 1 = manipulated; source (H,W) long codes (0 real, 1 generated,
    2 copied, see gendet.data.manipulations.codes); mask_from_file. A sample without a mask file gets
    the mask its label implies: real -> all real, generated -> all generated. Data without any mask
    file gives exactly the items it always did.
    """

    def __init__(self, samples: Sequence[Sample], transform: ImageTransform, seed: int = 0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.with_masks = any(s.mask is not None for s in self.samples)

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
            img = decode_for_model(self.read(s), self.transform.pp)
            rng = sample_seed(self.seed, self.epoch, index)
            if self.with_masks:
                item.update(self._image_and_mask(s, img, rng))
            else:
                item["image"] = self.transform(img, rng)
        except DecodeError as e:
            item["error"] = e.reason
        except Exception as e:  # noqa: BLE001 - a transform bug on one file must not kill a 10k-file run
            item["error"] = f"preprocessing failed: {type(e).__name__}: {e}"
        return item

    def read(self, s: Sample) -> str | bytes:
        """What decode_image gets for a sample: its path here; the shard reader returns its bytes."""
        return s.path

    def _image_and_mask(self, s: Sample, img: Image.Image, rng: np.random.Generator) -> dict[str, Any]:
        if s.mask is not None:
            try:
                mask = decode_image(s.mask)
            except DecodeError as e:
                raise DecodeError(f"mask {s.mask}: {e.reason}") from None
        else:
            mask = Image.new("L", img.size, 255 if s.label == 1 else 0)
        img, mask = self.transform.prepare_with_mask(img, mask, rng)
        source = torch.from_numpy(decode_source_map(mask).astype(np.int64))
        if s.mask is None:  # derived masks are uniform: no binning ambiguity
            source.fill_(SOURCE_GENERATED if s.label == 1 else SOURCE_REAL)
        return {"image": to_tensor(img, self.transform.pp), "source": source,
                "mask": (source != SOURCE_REAL).float()[None], "mask_from_file": s.mask is not None}


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
    if good and all("mask" in it for it in good):
        batch["mask"] = torch.stack([it["mask"] for it in good])
        batch["source"] = torch.stack([it["source"] for it in good])
        batch["mask_from_file"] = torch.tensor([it["mask_from_file"] for it in good], dtype=torch.bool)
    return batch
