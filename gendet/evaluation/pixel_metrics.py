"""Pixel-level evaluation of a manipulation mask: F1, IoU, pixel-AUC, per manipulation kind.

Conventions (the image-forgery-localisation ones):
- F1 and IoU at a fixed threshold (0.5 on P(manipulated)) are computed per image and averaged over
  images whose true mask is not empty (on an image with nothing manipulated both are undefined);
- pixel-AUC pools the pixels of all images of a group (threshold-free), on at most `max_pixels`
  pixels drawn with a seeded RNG;
- real images (empty true mask) get the false-positive pixel rate instead;
- source accuracy: the share of manipulated pixels whose predicted source (generated / copied)
  is the true one.
The AUC comes from torchmetrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_auroc

from gendet.data.dataset import ImageDataset, collate_items
from gendet.data.manipulations.codes import SOURCE_REAL
from gendet.data.preprocess import ImageTransform, Preprocess
from gendet.data.sample import Sample

THRESHOLD = 0.5


@dataclass
class PixelPredictions:
    """Per image: the sample, P(manipulated) per pixel, predicted and true source codes, P(generated)."""

    samples: list[Sample]
    prob: np.ndarray  # (N, H, W) float32
    source_pred: np.ndarray  # (N, H, W) uint8
    truth: np.ndarray  # (N, H, W) uint8 source codes
    image_prob: np.ndarray  # (N,)
    errors: list[tuple[str, str]]

    def select(self, keep: np.ndarray) -> PixelPredictions:
        idx = np.flatnonzero(keep)
        return PixelPredictions([self.samples[i] for i in idx], self.prob[idx], self.source_pred[idx],
                                self.truth[idx], self.image_prob[idx], [])


def sample_kind(s: Sample) -> str:
    """The group a sample's pixel metrics go to: its manipulation kind, else real / fully generated."""
    kind = s.extra.get("kind")
    if kind:
        return str(kind)
    return "real" if s.label == 0 else "fully_generated"


@torch.inference_mode()
def predict_pixels(detector: Any, samples: Sequence[Sample], pp: Preprocess, batch_size: int = 64,
                   device: str | torch.device = "cpu", seed: int = 0) -> PixelPredictions:
    """Run a detector with pixel heads (`predict_pixels(x)`, e.g. gamma) on samples with their true masks
    (mask files, else implied by the label), preprocessed exactly as for image-level evaluation."""
    samples = list(samples)
    ds = ImageDataset(samples, ImageTransform(pp, train=False), seed=seed)
    ds.with_masks = True  # true masks for every sample, mask file or not
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=collate_items)
    detector.eval()
    device = torch.device(device)
    keep, probs, srcs, truths, img_probs, errors = [], [], [], [], [], []
    for batch in loader:
        errors.extend(batch["errors"])
        if batch["image"].numel() == 0:
            continue
        out = detector.predict_pixels(batch["image"].to(device))
        if out is None:
            raise ValueError(f"{type(detector).__name__} has no segmentation heads: no pixel predictions")
        keep.extend(batch["index"].tolist())
        probs.append(out["mask"].float().cpu().numpy())
        srcs.append(out["source"].argmax(dim=1).to(torch.uint8).cpu().numpy())
        truths.append(batch["source"].to(torch.uint8).numpy())
        img_probs.append(out["prob"].float().cpu().numpy())
    if not keep:
        raise ValueError("no image could be evaluated at pixel level")
    return PixelPredictions([samples[i] for i in keep], np.concatenate(probs), np.concatenate(srcs),
                            np.concatenate(truths), np.concatenate(img_probs), errors)


def mask_metrics(truth: np.ndarray, prob: np.ndarray, threshold: float = THRESHOLD, max_pixels: int = 2_000_000,
                 seed: int = 0) -> dict[str, Any]:
    """truth: bool (N, H, W) manipulated pixels; prob: (N, H, W) P(manipulated). See the module docstring."""
    truth = np.asarray(truth, dtype=bool)
    prob = np.asarray(prob, dtype=np.float32)
    if truth.shape != prob.shape or truth.ndim != 3:
        raise ValueError(f"truth {truth.shape} and prob {prob.shape} must both be (N, H, W)")
    n = truth.shape[0]
    t = torch.from_numpy(truth.reshape(n, -1)).long()
    p = torch.from_numpy(prob.reshape(n, -1))
    # per-image counts (torchmetrics' samplewise stat scores fail on a single image, so count directly)
    hit = p >= threshold
    tp, fp = (hit & (t == 1)).sum(1).double(), (hit & (t == 0)).sum(1).double()
    tn, fn = (~hit & (t == 0)).sum(1).double(), (~hit & (t == 1)).sum(1).double()
    has_truth = (tp + fn) > 0
    f1 = (2 * tp / (2 * tp + fp + fn).clamp_min(1))[has_truth]
    iou = (tp / (tp + fp + fn).clamp_min(1))[has_truth]
    real_pixels = float((fp + tn).sum())
    flat_t, flat_p = t.reshape(-1), p.reshape(-1)
    if flat_t.numel() > max_pixels:
        idx = torch.from_numpy(np.random.default_rng(seed).choice(flat_t.numel(), max_pixels, replace=False))
        flat_t, flat_p = flat_t[idx], flat_p[idx]
    both = 0 < int(flat_t.sum()) < flat_t.numel()
    return {
        "n": int(n), "n_with_mask": int(has_truth.sum()),
        "f1": float(f1.mean()) if len(f1) else None,
        "iou": float(iou.mean()) if len(iou) else None,
        "pixel_auc": float(binary_auroc(flat_p, flat_t)) if both else None,
        "fp_rate": float(fp.sum()) / real_pixels if real_pixels else None,
        "true_area": float(truth.mean()), "pred_area": float((prob >= threshold).mean()),
    }


def source_accuracy(truth: np.ndarray, pred: np.ndarray) -> float | None:
    """Share of manipulated pixels (truth != real) whose predicted source code equals the true one."""
    manipulated = truth != SOURCE_REAL
    return float((pred[manipulated] == truth[manipulated]).mean()) if manipulated.any() else None


def pixel_report(preds: PixelPredictions, threshold: float = THRESHOLD, seed: int = 0) -> dict[str, dict[str, Any]]:
    """{kind: metrics} for every kind present, plus "partial" (all partly manipulated images pooled)."""
    kinds = np.array([sample_kind(s) for s in preds.samples])
    out: dict[str, dict[str, Any]] = {}
    partial = np.array([k not in ("real", "fully_generated") for k in kinds])
    groups = [(k, kinds == k) for k in sorted(set(kinds))] + ([("partial", partial)] if partial.any() else [])
    for name, keep in groups:
        sub = preds.select(keep)
        m = mask_metrics(sub.truth != SOURCE_REAL, sub.prob, threshold, seed=seed)
        m["source_acc"] = source_accuracy(sub.truth, sub.source_pred)
        m["image_acc"] = float(((sub.image_prob >= 0.5) == np.array([s.label == 1 for s in sub.samples])).mean())
        out[name] = m
    return out
