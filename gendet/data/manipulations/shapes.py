"""Where a manipulation goes: boolean (H, W) masks of three kinds, drawn from a seeded RNG.

- box: an axis-aligned rectangle (object detectors' boxes, the classic inpainting benchmark mask);
- strokes: free-form brush strokes (the LaMa / DeepFill "free-form" masks);
- blob: an object-like star-shaped region (a few low-frequency harmonics of a circle), a stand-in
  for a segmented object since the local data has no object masks.
`area` is the wanted fraction of the image; boxes and blobs meet it closely, strokes roughly.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("box", "strokes", "blob")


def box_mask(h: int, w: int, rng: np.random.Generator, area: float) -> np.ndarray:
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    bh = int(np.clip(round(math.sqrt(area * h * w / aspect)), 2, h - 1))
    bw = int(np.clip(round(area * h * w / bh), 2, w - 1))
    top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    out = np.zeros((h, w), dtype=bool)
    out[top:top + bh, left:left + bw] = True
    return out


def strokes_mask(h: int, w: int, rng: np.random.Generator, area: float) -> np.ndarray:
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    side = min(h, w)
    n_strokes = int(rng.integers(1, 4))
    width = max(2, round(side * math.sqrt(area) / (1.5 * n_strokes)))
    for _ in range(n_strokes):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        angle = float(rng.uniform(0, 2 * math.pi))
        points = [(x, y)]
        for _ in range(int(rng.integers(3, 7))):
            angle += float(rng.uniform(-1.2, 1.2))
            step = float(rng.uniform(0.15, 0.35)) * side
            x = float(np.clip(x + step * math.cos(angle), 0, w - 1))
            y = float(np.clip(y + step * math.sin(angle), 0, h - 1))
            points.append((x, y))
        draw.line(points, fill=255, width=width, joint="curve")
        r = width / 2
        for px, py in points:  # round caps
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return np.asarray(img) > 0


def blob_mask(h: int, w: int, rng: np.random.Generator, area: float) -> np.ndarray:
    r0 = math.sqrt(area * h * w / math.pi)
    cy = float(rng.uniform(min(r0, h / 2), max(h - r0, h / 2)))
    cx = float(rng.uniform(min(r0, w / 2), max(w - r0, w / 2)))
    theta = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    radius = np.ones_like(theta)
    for k in (2, 3, 4):
        radius += rng.uniform(0.0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    radius = r0 * np.clip(radius, 0.3, None)
    pts = list(zip((cx + radius * np.cos(theta)).tolist(), (cy + radius * np.sin(theta)).tolist(), strict=True))
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).polygon(pts, fill=255)
    return np.asarray(img) > 0


def random_mask(shape: str, h: int, w: int, rng: np.random.Generator, area_range: tuple[float, float]) -> np.ndarray:
    """A mask of `shape` covering about a uniform draw from `area_range` of the image; never empty or full."""
    area = float(rng.uniform(*area_range))
    fn = {"box": box_mask, "strokes": strokes_mask, "blob": blob_mask}.get(shape)
    if fn is None:
        raise ValueError(f"unknown mask shape {shape!r}; known: {SHAPES}")
    m = fn(h, w, rng, area)
    if not m.any():  # a degenerate draw (tiny image): fall back to the centre pixel block
        m[h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1] = True
    if m.all():
        m[0, :] = False
    return m
