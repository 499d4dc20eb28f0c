"""The `manipulated` subset of the local benchmark: real crops with a generated or copied region.

    <root>/manipulated/{train,val}/ai/<i>.png       crop i of the base data with one region manipulated
    <root>/manipulated/{train,val}/nature/<i>.png   crop i itself (some perturbed, label real)
    <root>/manipulated/{train,val}/masks/<i>.png    pixel source of ai/<i>.png (see codes.py)
    <root>/manifest.json                            per-image kind, shape, edge, photos, perturbation, key

The real crops are those of a built local benchmark (`base_root`, its `nature` folders and its
manifest's crop sources), so splits stay by source photo and a splice donor is a crop of another
photo of the same split. Kinds: `inpaint_<generator>` (regeneration by a shipped flow generator,
see inpaint.py), `copy_move`, `splice`; each ai image gets one, in equal shares per split. The
whole-image perturbations hit ai and nature images with the same probability, so they carry no
label. Cached like the base data: keyed by a hash of the base data's key, the settings, the
generators' weights and CODE_VERSION; built in a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from gendet.data.decode import decode_image
from gendet.data.layouts import read_samples
from gendet.data.manipulations.codes import SOURCE_GENERATED, SOURCE_REAL, encode_source_map
from gendet.data.manipulations.edits import copy_move, perturb, splice
from gendet.data.manipulations.shapes import SHAPES, random_mask
from gendet.data.sample import Sample

FORMAT = "gendet-manipulated"
CODE_VERSION = 1
SUBSET = "manipulated"
MANIFEST = "manifest.json"
MASK_ENCODING = "8-bit grayscale PNG: 0 = real, 255 = generated, 128 = copied from a real image"


@dataclass(frozen=True)
class ManipulationConfig:
    """What the manipulated subset holds. Inpainting kinds are `inpaint_<generator>` (latent_flow, pixel_flow).

    The defaults inpaint the training split only with latent_flow (the tiny benchmark's training subset),
    so pixel_flow stays an unseen generator for the cross-generator test; val has both.
    """

    kinds_train: tuple[str, ...] = ("inpaint_latent_flow", "copy_move", "splice")
    kinds_val: tuple[str, ...] = ("inpaint_latent_flow", "inpaint_pixel_flow", "copy_move", "splice")
    area: tuple[float, float] = (0.08, 0.3)
    blend_fraction: float = 0.5  # copy-move / splice with feathered edges
    perturb_fraction: float = 0.5  # of ai and of nature images alike
    seed: int = 0

    def kinds(self, split: str) -> tuple[str, ...]:
        return self.kinds_train if split == "train" else self.kinds_val


def _derived_seed(seed: int, *parts: str) -> int:
    return int(hashlib.sha256(":".join([str(seed), *parts]).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def read_base_crops(base_root: Path, split: str) -> tuple[torch.Tensor, list[str]]:
    """The real crops of a split of the base data (uint8 (N,3,S,S)) and each crop's source photo."""
    from gendet.bench.tiny_genimage import read_manifest

    manifest = read_manifest(base_root) or {}
    subsets = sorted(manifest.get("subsets") or [p.name for p in base_root.iterdir() if (p / split).is_dir()])
    if not subsets:
        raise ValueError(f"{base_root} holds no GenImage-layout subset")
    files = sorted((base_root / subsets[0] / split / "nature").glob("*.png"))
    if len(files) < 2:
        raise ValueError(f"{base_root / subsets[0] / split / 'nature'} has {len(files)} real crops; need >= 2")
    size = int(manifest.get("size") or min(decode_image(files[0]).size))
    arrs = [np.asarray(ImageOps.fit(decode_image(f), (size, size), Image.Resampling.BICUBIC)) for f in files]
    sources = (manifest.get("real", {}).get("crop_sources", {}).get(split)
               or [f"{subsets[0]}/{split}/{f.name}" for f in files])
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous(), list(sources)[:len(files)]


def _inpainter(name: str, base_manifest: dict[str, Any]) -> tuple[Any, str, str]:
    """The generator a base data set was built with (its recorded weights), else the shipped one."""
    from gendet.bench.tiny_genimage import resolve_generator

    weights = (base_manifest.get("subsets", {}).get(name) or {}).get("weights")
    weights_dir = Path(weights).parent if weights and Path(weights).is_file() else None
    return resolve_generator(name, weights_dir)


def _edit_region(kind: str, i: int, shape: str, real: np.ndarray, sources: list[str], ai: np.ndarray,
                 maps: np.ndarray, rng: np.random.Generator, cfg: ManipulationConfig, split: str) -> dict[str, Any]:
    """Copy-move or splice one region of crop i in place (ai[i], maps[i]); its record fields."""
    rec: dict[str, Any] = {}
    n, h, w = real.shape[:3]
    blended = bool(rng.random() < cfg.blend_fraction)
    rec["edge"] = "blended" if blended else "hard"
    donor = None
    if kind == "splice":
        others = [j for j in range(n) if sources[j] != sources[i]] or [j for j in range(n) if j != i]
        donor = int(rng.choice(others))
        rec["donor_photo"] = sources[donor]
    elif kind != "copy_move":
        raise ValueError(f"unknown manipulation kind {kind!r}")
    # copy-move needs room to move the region: a smaller area, redrawn if it spans the image
    area = (cfg.area[0] / 2, cfg.area[1] / 2) if kind == "copy_move" else cfg.area
    for attempt in range(8):
        mask = random_mask(shape if attempt < 4 else "box", h, w, rng, area)
        try:
            if donor is None:
                ai[i], maps[i], info = copy_move(real[i], mask, rng, blended)
            else:
                ai[i], maps[i], info = splice(real[i], real[donor], mask, rng, blended)
            break
        except ValueError:
            continue
    else:
        raise RuntimeError(f"could not place a {kind} region in crop {i} of {split}")
    rec.update(info)
    return rec


def _manipulate_split(crops: torch.Tensor, sources: list[str], kinds: tuple[str, ...], cfg: ManipulationConfig,
                      split: str, generators: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, list]:
    """(ai uint8 (N,H,W,3), nature uint8, source maps (N,H,W), ai records, nature records) for one split."""
    from gendet.generation.inpaint import inpaint

    rng = np.random.default_rng(_derived_seed(cfg.seed, "manipulated", split))
    real = crops.permute(0, 2, 3, 1).numpy()
    n, h, w = real.shape[:3]
    ai, maps = real.copy(), np.zeros((n, h, w), dtype=np.uint8)
    order = rng.permutation(n)
    records: list[dict[str, Any]] = []
    jobs: dict[str, list[tuple[int, np.ndarray]]] = {}
    for i in range(n):
        kind = kinds[int(order[i]) % len(kinds)]
        shape = str(rng.choice(SHAPES))
        rec: dict[str, Any] = {"index": i, "kind": kind, "shape": shape, "photo": sources[i]}
        if kind.startswith("inpaint_"):
            mask = random_mask(shape, h, w, rng, cfg.area)
            jobs.setdefault(kind.removeprefix("inpaint_"), []).append((i, mask))
            maps[i][mask] = SOURCE_GENERATED
            rec.update(edge="hard", generator=kind.removeprefix("inpaint_"))
        else:
            rec.update(_edit_region(kind, i, shape, real, sources, ai, maps, rng, cfg, split))
        records.append(rec)
    for name, items in sorted(jobs.items()):
        idx = torch.tensor([i for i, _ in items])
        masks = torch.from_numpy(np.stack([m for _, m in items]))
        out = inpaint(generators[name], crops[idx], masks, seed=_derived_seed(cfg.seed, "inpaint", name, split))
        ai[idx.numpy()] = out.permute(0, 2, 3, 1).numpy()
    nature = real.copy()
    nature_records: list[dict[str, Any]] = [{"index": i, "photo": sources[i]} for i in range(n)]
    for arr, recs in ((ai, records), (nature, nature_records)):
        for i in range(n):
            if rng.random() < cfg.perturb_fraction:
                arr[i], recs[i]["perturbation"] = perturb(arr[i], rng)
    for rec, m in zip(records, maps, strict=True):
        rec["area"] = float((m != SOURCE_REAL).mean())
    return ai, nature, maps, records, nature_records


def _write(arr: np.ndarray, folder: Path) -> None:
    from gendet.bench.tiny_genimage import write_images

    write_images(torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), folder)


def build_manipulated_subset(base_root: str | os.PathLike, root: str | os.PathLike,
                             config: ManipulationConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Build (or reuse) the manipulated subset at `root` from the real crops of `base_root`; returns the manifest."""
    from gendet.bench.tiny_genimage import read_manifest, state_dict_sha256

    cfg = config or ManipulationConfig()
    base_root, root = Path(base_root), Path(root)
    log = print if progress else (lambda *_a, **_k: None)
    t0 = time.perf_counter()
    base_manifest = read_manifest(base_root) or {}
    names = sorted({k.removeprefix("inpaint_") for k in (*cfg.kinds_train, *cfg.kinds_val) if k.startswith("inpaint_")})
    generators = {name: _inpainter(name, base_manifest) for name in names}
    crops = {s: read_base_crops(base_root, s) for s in ("train", "val")}
    digest = hashlib.sha256()
    for s in ("train", "val"):
        digest.update(crops[s][0].numpy().tobytes())
        digest.update(json.dumps(crops[s][1]).encode())
    key_fields = {"format": FORMAT, "code_version": CODE_VERSION, "crops": digest.hexdigest(),
                  "config": asdict(cfg), "generators": {n: sha for n, (_, _, sha) in generators.items()}}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    existing = read_manipulated_manifest(root)
    if existing is not None and existing.get("key") == key and existing.get("complete"):
        log(f"[manipulated] reusing {root} (key {key[:12]})")
        return {**existing, "reused": True}
    log(f"[manipulated] building {root} from {base_root}")
    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        records: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        for s in ("train", "val"):
            ai, nature, maps, recs, nrecs = _manipulate_split(*crops[s], cfg.kinds(s), cfg, s,
                                                              {n: g for n, (g, _, _) in generators.items()})
            _write(ai, tmp / SUBSET / s / "ai")
            _write(nature, tmp / SUBSET / s / "nature")
            (tmp / SUBSET / s / "masks").mkdir(parents=True)
            for i, m in enumerate(maps):
                encode_source_map(m).save(tmp / SUBSET / s / "masks" / f"{i:05d}.png", format="PNG")
            records[s] = {"ai": recs, "nature": nrecs}
            counts[s] = {"ai": len(recs), "nature": len(nrecs)}
        manifest = {
            "format": FORMAT, "code_version": CODE_VERSION, "key": key, "complete": True,
            "base_root": str(base_root), "base_key": base_manifest.get("key"), "config": asdict(cfg),
            "size": int(crops["train"][0].shape[-1]), "mask_encoding": MASK_ENCODING,
            "generators": {n: {"weights": w, "weights_sha256": sha, "state_sha256": state_dict_sha256(g)}
                           for n, (g, w, sha) in generators.items()},
            "subsets": {SUBSET: {"family": "manipulated", "counts": counts,
                                 "ai_source": "real crop with one manipulated region (see records)"}},
            "real": {"crop_sources": {s: crops[s][1] for s in crops}},
            "records": records, "seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if root.exists():
            if read_manipulated_manifest(root) is None and any(root.iterdir()):
                raise FileExistsError(f"{root} exists and is not a gendet manipulated subset: refusing to replace it")
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"[manipulated] wrote {root} in {manifest['seconds']:.1f} s")
    return {**manifest, "reused": False}


def read_manipulated_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def manipulated_samples(root: str | os.PathLike) -> list[Sample]:
    """The subset's samples with group = source photo and extra["kind"] (ai: the manipulation kind,
    nature: "real"), so holdouts stay grouped by photo and pixel metrics can be split by kind."""
    manifest = read_manipulated_manifest(root)
    if manifest is None:
        raise ValueError(f"{root} is not a manipulated subset built by gendet (no {MANIFEST})")
    out = []
    for s in read_samples(root, layout="genimage"):
        recs = manifest["records"][s.split]["ai" if s.label == 1 else "nature"]
        rec = recs[int(s.path.stem)]
        kind = rec["kind"] if s.label == 1 else "real"
        out.append(replace(s, group=rec["photo"], extra={**s.extra, "kind": kind,
                                                         "perturbation": (rec.get("perturbation") or {}).get("name")}))
    return out
