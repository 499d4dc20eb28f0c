"""Small builders shared by the detect tests: a tiny checkpoint and folders of tiny images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gendet.models.checkpoint import save_checkpoint
from gendet.models.registry import create_detector


def make_checkpoint(out: Path, threshold: float = 0.5, source: str = "fixed", seed: int = 0, **extra) -> Path:
    """A tiny_cnn checkpoint whose scores spread over (0, 1) (a random head scaled up), with a full config."""
    torch.manual_seed(seed)
    det = create_detector("tiny_cnn")
    with torch.no_grad():
        det.head.weight.mul_(40.0)
    pp = det.preprocess("jpeg")
    config = {"preprocess": pp.to_dict(), "align": "jpeg", "threshold": threshold, "threshold_source": source}
    config.update(extra)
    save_checkpoint(out, det, config)
    return out


def noise_image(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)  # smooth-ish content so scores differ per image
    img = Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_good_images(folder: Path, n: int, size: int = 24, seed: int = 0) -> list[Path]:
    """n distinct small images, alternating PNG and JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / (f"good_{i:03d}.png" if i % 2 == 0 else f"good_{i:03d}.jpg")
        noise_image(size + (i % 5), seed * 1000 + i).save(p)
        paths.append(p)
    return paths


def make_many_images(folder: Path, n: int, distinct: int = 8) -> None:
    """n image files cheaply: `distinct` tiny PNGs, hard-linked (else copied) under new names."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for i in range(distinct):
        p = folder / f"img_{i:05d}.png"
        noise_image(16 + i % 9, i).save(p)
        sources.append(p)
    for i in range(distinct, n):
        dst = folder / f"img_{i:05d}.png"
        try:
            os.link(sources[i % distinct], dst)
        except OSError:
            dst.write_bytes(sources[i % distinct].read_bytes())


def read_jsonl(path: Path) -> list[dict]:
    with open(path, "rb") as fh:
        return [json.loads(line) for line in fh if line.strip()]
