"""GAMMA's manipulated subset built from the genuine set's real photos (masks kept), cached by content.

Each photo gives one manipulated image: its native-resolution centre crop (at most `SIZE` px, never
resampled) with one region
- inpainted by one of gendet's flow generators (`pixel_flow`, `latent_flow`: 64 px models): a window of
  half the crop is down-sampled to 64 px, the masked part regenerated there (RePaint-style, the rest
  known), up-sampled back and pasted inside the mask only, so the region's pixels are generated while
  the rest stays the camera's;
- copy-moved inside the photo, or spliced from another photo of the same split (hard or feathered edges).
Source maps use gendet.data.manipulations.codes (0 real, 255 generated, 128 copied) and are written
as mask PNGs beside the images. Photos of the train split make the training set, photos of the val
split the pixel-level test set (never trained on). Label 1 (manipulated) for every image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from gendet.data.decode import DecodeError, decode_image
from gendet.data.manipulations.codes import SOURCE_GENERATED, SOURCE_REAL, encode_source_map
from gendet.data.manipulations.edits import copy_move, splice
from gendet.data.manipulations.shapes import SHAPES, random_mask
from gendet.data.sample import Sample
from gendet.evaluation.feature_cache import sample_digests
from gendet.io import atomic_write, atomic_write_text

SIZE = 384
KINDS = ("inpaint_pixel_flow", "inpaint_latent_flow", "copy_move", "splice")
INPAINT_SIZE = 64
AREA = (0.08, 0.3)  # copy-move / splice region, share of the crop
INPAINT_AREA = (0.25, 0.6)  # share of the inpainting window
CODE_VERSION = 1


def _centre_crop(img: Image.Image) -> np.ndarray:
    s = min(SIZE, *img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    return np.asarray(img.crop((left, top, left + s, top + s)).convert("RGB"))


def inpaint_region(image: np.ndarray, generator: Any, rng: np.random.Generator, seed: int) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """(image with one region regenerated, source map) for a square uint8 (S, S, 3) crop."""
    from gendet.generation.inpaint import inpaint

    s = image.shape[0]
    w = min(s, max(INPAINT_SIZE, s // 2))
    y, x = (int(v) for v in rng.integers(0, s - w + 1, 2))
    window = Image.fromarray(image[y:y + w, x:x + w])
    small = np.array(window.resize((INPAINT_SIZE, INPAINT_SIZE), Image.Resampling.LANCZOS))
    mask = random_mask(str(rng.choice(SHAPES)), INPAINT_SIZE, INPAINT_SIZE, rng, INPAINT_AREA)
    out = inpaint(generator, torch.from_numpy(small).permute(2, 0, 1)[None].contiguous(),
                  torch.from_numpy(mask)[None], seed=seed)
    big = np.asarray(Image.fromarray(out[0].permute(1, 2, 0).numpy()).resize((w, w), Image.Resampling.BICUBIC))
    big_mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, w), Image.Resampling.NEAREST)) > 0
    result, source = image.copy(), np.full(image.shape[:2], SOURCE_REAL, dtype=np.uint8)
    result[y:y + w, x:x + w][big_mask] = big[big_mask]
    source[y:y + w, x:x + w][big_mask] = SOURCE_GENERATED
    return result, source


def _key(photos: Sequence[Sample], seed: int) -> str:
    d = {"files": sample_digests(photos), "seed": seed, "size": SIZE, "kinds": KINDS, "version": CODE_VERSION,
         "area": AREA, "inpaint_area": INPAINT_AREA}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]


def build_genuine_manipulated(photos: Sequence[Sample], cache_dir: Path, split: str, seed: int = 0,
                              progress: bool = True) -> list[Sample]:
    """One manipulated image (+ mask) per photo, written under cache_dir (reused when it exists)."""
    from gendet.bench.tiny_genimage import resolve_generator

    photos = sorted(photos, key=lambda s: str(s.path))
    root = Path(cache_dir) / "genuine-manipulated" / f"{split}-{_key(photos, seed)}"
    index = root / "index.json"
    if index.is_file():
        rows = json.loads(index.read_text())
    else:
        gens = {k: resolve_generator(k.removeprefix("inpaint_"), None)[0] for k in KINDS if k.startswith("inpaint_")}
        rng = np.random.default_rng(seed)
        crops: list[np.ndarray] = []
        names: list[str] = []
        for s in photos:
            try:
                crops.append(_centre_crop(decode_image(s.path)))
                names.append(str(s.path))
            except DecodeError:
                continue
        rows = []
        for i in tqdm(range(len(crops)), desc=f"manipulated {split}", unit="img", disable=not progress, leave=False):
            kind = KINDS[i % len(KINDS)]
            img = crops[i]
            rec: dict[str, Any] = {"kind": kind, "photo": names[i]}
            if kind.startswith("inpaint_"):
                out, source = inpaint_region(img, gens[kind], rng, seed * 7919 + i)
            else:
                blended = bool(rng.random() < 0.5)
                rec["edge"] = "blended" if blended else "hard"
                s = img.shape[0]
                donors = [j for j in range(len(crops)) if j != i and crops[j].shape[0] >= s]
                for attempt in range(8):
                    mask = random_mask(str(rng.choice(SHAPES)) if attempt < 4 else "box", s, s, rng,
                                       (AREA[0] / 2, AREA[1] / 2) if kind == "copy_move" else AREA)
                    try:
                        if kind == "copy_move" or not donors:
                            out, source, _ = copy_move(img, mask, rng, blended)
                            rec["kind"] = "copy_move"
                        else:
                            j = int(rng.choice(donors))
                            out, source, _ = splice(img, crops[j][:s, :s], mask, rng, blended)
                            rec["donor"] = names[j]
                        break
                    except ValueError:
                        continue
                else:
                    continue  # no room for a region in this photo
            name = f"m{i:04d}"
            atomic_write(root / f"{name}.png", lambda tmp, out=out: Image.fromarray(out).save(tmp, format="PNG"))
            atomic_write(root / f"{name}_mask.png",
                         lambda tmp, source=source: encode_source_map(source).save(tmp, format="PNG"))
            rec.update(path=f"{name}.png", mask=f"{name}_mask.png", area=float((source != SOURCE_REAL).mean()))
            rows.append(rec)
        atomic_write_text(index, json.dumps(rows, indent=1))
    return [Sample(path=root / r["path"], label=1, split=split, generator="manipulated", group=f"manip:{r['photo']}",
                   mask=root / r["mask"], extra={"kind": r["kind"], "photo": r["photo"], "area": r["area"]})
            for r in rows]
