"""A miniature built benchmark root (GenImage layout + manifest) for the manipulation and GAMMA tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def textured(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin((5 + seed % 4) * x + seed), np.cos((3 + seed % 3) * y), np.sin(4 * (x + y) + seed)],
                    axis=-1) * 90 + 128
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def make_base_root(root: Path, subsets: tuple[str, ...] = ("latent_flow",), n: dict[str, int] | None = None,
                   size: int = 64) -> Path:
    """Real crops (3 photos per split) under every subset's nature/, noisy 'generated' images under ai/."""
    n = n or {"train": 6, "val": 4}
    sources = {s: [f"{s}_photo{i % 3}.png" for i in range(k)] for s, k in n.items()}
    for si, sub in enumerate(subsets):
        for split, k in n.items():
            for cls in ("ai", "nature"):
                (root / sub / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(k):
                seed = i + (100 if split == "val" else 0)
                Image.fromarray(textured(seed, size)).save(root / sub / split / "nature" / f"{i:05d}.png")
                fake = np.random.default_rng(1000 * (si + 1) + seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(fake).save(root / sub / split / "ai" / f"{i:05d}.png")
    manifest = {"format": "gendet-tiny-genimage", "key": "test-key", "size": size, "complete": True,
                "subsets": {sub: {"counts": {s: {"ai": k, "nature": k} for s, k in n.items()}} for sub in subsets},
                "real": {"crop_sources": sources}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root
