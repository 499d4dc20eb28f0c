"""Frozen-backbone features of image *views*, computed once and cached on disk by content.

A view is one deterministic way to turn a file into model inputs: the evaluation crop grid,
the centre crop, the resized whole image, a seeded training augmentation (draw k), or an
evaluation degradation. Its features depend only on (backbone weights + taps + input
normalisation, view definition, file bytes), so the cache key is those three hashes: a
benchmark that trains dozens of linear heads (every leave-one-out fold, every recipe)
computes each backbone forward once, and a rerun computes none.

Layout: CACHE/probe-features/<model key>/<view key>/<sha256[:2]>/<sha256>.npy, float32 (crops, D).
Writes are atomic (temp file + rename), so an interrupted run leaves no half entries.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gendet.data.augment import make_augment
from gendet.data.decode import DecodeError
from gendet.data.preprocess import ImageTransform, Preprocess, decode_for_model
from gendet.data.sample import Sample
from gendet.evaluation.degradations import get_degradation
from gendet.io import atomic_write
from gendet.lazy_import import file_sha256
from gendet.models.hooks import OwnFeatureKey


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class View:
    """How one file becomes model inputs. `train` views draw a seeded random crop (+ `augment`);
    evaluation views use `pp.crops` grid crops (+ an optional protocol `degradation`)."""

    name: str
    pp: Preprocess
    train: bool = False
    augment: dict[str, Any] | None = field(default=None, hash=False)
    degradation: str | None = None
    draw: int = 0
    seed: int = 0

    def key(self) -> str:
        d = asdict(self)
        d["pp"] = self.pp.to_dict()
        d.pop("name")
        if not self.train:  # evaluation views draw no random numbers
            d.pop("draw"), d.pop("seed")
        return _digest(d)

    def transform(self) -> ImageTransform:
        augment = make_augment(**self.augment) if self.train and self.augment else None
        degradation = get_degradation(self.degradation) if self.degradation else None
        return ImageTransform(self.pp, train=self.train, augment=augment, degradation=degradation)

    def rng(self, sha256: str) -> np.random.Generator:
        """Randomness from the file's content, the view's draw and the seed: order- and worker-independent."""
        return np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.draw, int(sha256[:15], 16)]))


class FeatureCache:
    """Read-through disk cache of per-file view features for one backbone (`model_key`)."""

    def __init__(self, root: str | os.PathLike, model_key: str) -> None:
        self.root = Path(root) / "probe-features" / model_key

    def path(self, view: View, sha256: str) -> Path:
        return self.root / view.key() / sha256[:2] / f"{sha256}.npy"

    def get(self, view: View, sha256: str) -> np.ndarray | None:
        p = self.path(view, sha256)
        if not p.is_file():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed

    def put(self, view: View, sha256: str, feats: np.ndarray) -> None:
        arr = np.asarray(feats, dtype=np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # np.save on a handle: no ".npy" appended to the temp name
                np.save(fh, arr, allow_pickle=False)

        atomic_write(self.path(view, sha256), write)


def model_key(detector: Any) -> str:
    """What the features depend on in the model: backbone name, its weights' sha256, taps (or, for a detector
    with more frozen parts, its own `feature_key()`)."""
    if isinstance(detector, OwnFeatureKey):
        return str(detector.feature_key())
    c = detector.config
    return f"{c['backbone']}-" + _digest({"backbone": c["backbone"], "sha256": c.get("backbone_sha256"),
                                          "taps": list(c["taps"]), "pretrained": c.get("pretrained", True)})


class _ViewDataset(Dataset):
    def __init__(self, jobs: Sequence[tuple[str, Path]], view: View) -> None:
        self.jobs, self.view, self.transform = list(jobs), view, view.transform()

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sha, path = self.jobs[i]
        try:
            x = self.transform(decode_for_model(path, self.transform.pp), self.view.rng(sha))
            return {"sha": sha, "image": x if x.ndim == 4 else x[None], "error": None, "path": str(path)}
        except DecodeError as e:
            return {"sha": sha, "image": None, "error": e.reason, "path": str(path)}
        except Exception as e:  # noqa: BLE001 - one odd file must not end a benchmark
            return {"sha": sha, "image": None, "error": f"preprocessing failed: {type(e).__name__}: {e}",
                    "path": str(path)}


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


@dataclass
class ViewFeatures:
    """Features of one view for a list of samples: `feats[i]` is (crops, D), None when unreadable."""

    feats: list[np.ndarray | None]
    errors: dict[str, str]  # path -> reason
    computed: int = 0
    cached: int = 0


def sample_digests(samples: Sequence[Sample]) -> list[str]:
    """sha256 of each sample's file ("" when unreadable: its view features are then None with the reason)."""
    out = []
    for s in samples:
        try:
            out.append(file_sha256(s.path))
        except OSError:
            out.append("")
    return out


def _compute(detector: Any, todo: list[tuple[str, Path]], view: View, cache: FeatureCache, batch_size: int,
             workers: int, device: str, progress: bool) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """(sha, features, None) for each file of `todo` the backbone read (and cached), (sha, None, error) otherwise."""
    loader = DataLoader(_ViewDataset(todo, view), batch_size=max(1, batch_size // max(1, view.pp.crops)),
                        num_workers=workers, collate_fn=_collate)
    dev = torch.device(device)
    detector.to(dev).eval()
    with tqdm(total=len(todo), desc=f"features {view.name}", unit="img", disable=not progress, leave=False) as bar:
        for items in loader:
            good = [it for it in items if it["error"] is None]
            for it in items:
                if it["error"] is not None:
                    yield it["sha"], None, it["error"]
            if good:
                x = torch.cat([it["image"] for it in good]).to(dev)
                with torch.inference_mode():
                    f = detector.backbone_features(x).float().cpu().numpy()
                start = 0
                for it in good:
                    n = it["image"].shape[0]
                    arr = f[start:start + n]
                    start += n
                    cache.put(view, it["sha"], arr)
                    yield it["sha"], arr, None
            bar.update(len(items))


def view_features(
    detector: Any, samples: Sequence[Sample], digests: Sequence[str], view: View, cache: FeatureCache,
    batch_size: int = 32, workers: int = 0, device: str = "cpu", progress: bool = True,
) -> ViewFeatures:
    """Backbone features of `view` for every sample (cache first, then the backbone for the rest)."""
    feats: list[np.ndarray | None] = [None] * len(samples)
    errors: dict[str, str] = {}
    by_sha: dict[str, list[int]] = {}
    for i, (s, sha) in enumerate(zip(samples, digests, strict=True)):
        if not sha:
            errors[str(s.path)] = "cannot read the file"
            continue
        by_sha.setdefault(sha, []).append(i)
    todo, cached = [], 0
    for sha, idx in by_sha.items():
        hit = cache.get(view, sha)
        if hit is None:
            todo.append((sha, samples[idx[0]].path))
        else:
            cached += 1
            for i in idx:
                feats[i] = hit
    if todo:
        for sha, arr, error in _compute(detector, todo, view, cache, batch_size, workers, device, progress):
            for i in by_sha[sha]:
                if error is None:
                    feats[i] = arr
                else:
                    errors[str(samples[i].path)] = error
    return ViewFeatures(feats, errors, computed=len(todo), cached=cached)
