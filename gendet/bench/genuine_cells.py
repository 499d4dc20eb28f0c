"""Cells of the genuine benchmark: views and recipes, cached feature tables, and the two kinds of cell.

A cell trains one detector on some sample indices (threshold on a held-out part of them, by
near-duplicate cluster) and scores others:
- `HeadCell`: a probe's linear head on cached backbone features (seconds);
- `TrainedCell`: any registered detector through the epoch trainer and the scan pipeline.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gendet.data.layouts import split_holdout
from gendet.data.sample import Sample
from gendet.evaluation.feature_cache import FeatureCache, View, view_features
from gendet.evaluation.thresholds import fit_threshold, fit_threshold_at_fpr

HOLDOUT = 0.15  # share of a cell's training data (by cluster) that fits its threshold


@dataclass(frozen=True)
class Recipe:
    """Which views a head trains on and which view it is tested on."""

    name: str
    description: str
    train_views: tuple[str, ...]
    test_view: str


def recipes(n_draws: int) -> dict[str, Recipe]:
    draws = range(n_draws)
    out = [
        Recipe("default", "grid crops + crops of varied scale with Blur+JPEG; multi-crop test",
               ("grid", *(f"full_{k}" for k in draws)), "grid"),
        Recipe("no_blur_jpeg", "default without Blur+JPEG", ("grid", *(f"scale_{k}" for k in draws)), "grid"),
        Recipe("no_scale", "default without varied-scale crops", ("grid", *(f"blurjpeg_{k}" for k in draws)),
               "grid"),
        Recipe("no_augment", "grid crops only (no varied scale, no Blur+JPEG)", ("grid",), "grid"),
        Recipe("single_crop", "default training; tested on the centre crop only",
               ("grid", *(f"full_{k}" for k in draws)), "centre"),
        Recipe("resized", "whole image resized to the input size (short side), centre crop; train and test",
               ("resized",), "resized"),
    ]
    return {r.name: r for r in out}


def make_views(detector: Any, align: str, seed: int, n_draws: int, degradations: Sequence[str]) -> dict[str, View]:
    pp = detector.preprocess(align=align)
    one = replace(pp, crops=1)
    aug = dict(detector.config["augment"])
    flip_only = {"flip_prob": aug.get("flip_prob", 0.0)}
    views = {
        "grid": View("grid", pp),
        "centre": View("centre", one),
        "resized": View("resized", replace(one, resize=True)),
    }
    for k in range(n_draws):
        views[f"full_{k}"] = View(f"full_{k}", one, train=True, augment=aug, draw=k, seed=seed)
        views[f"scale_{k}"] = View(f"scale_{k}", one, train=True, augment=flip_only, draw=k, seed=seed)
        views[f"blurjpeg_{k}"] = View(f"blurjpeg_{k}", replace(one, train_crop_scale=(1.0, 1.0)), train=True,
                                      augment=aug, draw=k, seed=seed)
    for d in degradations:
        views[f"deg:{d}"] = View(f"deg:{d}", pp, degradation=d)
    return views


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


class FeatureTable:
    """Per view, per sample index: cached features (crops, D) or None."""

    def __init__(self, feats: dict[str, list[np.ndarray | None]]) -> None:
        self.feats = feats

    def rows(self, views: Sequence[str], idx: Sequence[int], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for v in views:
            for i in idx:
                f = self.feats[v][i]
                if f is not None:
                    xs.append(f)
                    ys.append(np.full(len(f), labels[i]))
        return np.concatenate(xs), np.concatenate(ys)

    def usable(self, views: Sequence[str], idx: Sequence[int]) -> list[int]:
        return [i for i in idx if all(self.feats[v][i] is not None for v in views)]


def compute_table(detector: Any, samples: Sequence[Sample], digests: Sequence[str],
                  jobs: Sequence[tuple[View, Sequence[int]]], cache: FeatureCache, workers: int = 0,
                  device: str = "cpu", progress: bool = True) -> tuple[FeatureTable, dict[str, str], dict[str, int]]:
    """Features of each (view, sample indices) job, from the cache or the backbone; jobs of one view are
    merged, so an index asked for twice is read once."""
    merged: dict[str, tuple[View, dict[int, None]]] = {}
    for view, idx in jobs:
        merged.setdefault(view.name, (view, {}))[1].update(dict.fromkeys(idx))
    feats: dict[str, list[np.ndarray | None]] = {}
    errors: dict[str, str] = {}
    counts = {"computed": 0, "cached": 0}
    for view, wanted in tqdm(merged.values(), desc="views", unit="view", disable=not progress):
        idx = list(wanted)
        got = view_features(detector, [samples[i] for i in idx], [digests[i] for i in idx], view, cache,
                            workers=workers, device=device, progress=progress)
        full: list[np.ndarray | None] = [None] * len(samples)
        for i, f in zip(idx, got.feats, strict=True):
            full[i] = f
        feats[view.name] = full
        errors.update(got.errors)
        counts["computed"] += got.computed
        counts["cached"] += got.cached
    return FeatureTable(feats), errors, counts


def holdout_split(samples: list[Sample], idx: Sequence[int], seed: int,
                  fraction: float = HOLDOUT) -> tuple[list[int], list[int]]:
    """Split sample indices into (fit, held-out) by near-duplicate cluster (Sample.group)."""
    pool = [samples[i] for i in idx]
    pos = {id(s): i for s, i in zip(pool, idx, strict=True)}
    fit, held = split_holdout(pool, fraction, seed)
    return [pos[id(s)] for s in fit], [pos[id(s)] for s in held]


THRESHOLD_MODES = ("fpr", "val", "fixed")
TARGET_FPR = 0.02  # the shipped operating point: 2 % of (out-of-fold) training photos called generated
OOF_FOLDS = 5


class HeadCell:
    """One cell: a probe head fitted on `fit_idx`'s training views; its threshold from `held_idx`'s test-view
    scores ("val": balanced accuracy; "fpr": at most `target_fpr` of the real ones above it), or 0.5."""

    def __init__(self, detector: Any, table: FeatureTable, labels: np.ndarray, recipe: Recipe,
                 fit_idx: Sequence[int], held_idx: Sequence[int], seed: int, threshold_mode: str = "val",
                 target_fpr: float = TARGET_FPR, held_scores: np.ndarray | None = None) -> None:
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {threshold_mode!r}")
        self.detector, self.table, self.recipe = detector, table, recipe
        self.fit_idx = table.usable(recipe.train_views, fit_idx)
        self.held_idx = list(held_idx) if held_scores is not None else table.usable((recipe.test_view,), held_idx)
        x, y = table.rows(recipe.train_views, self.fit_idx, labels)
        detector.fit_head(x, y, seed=seed)
        self.state = detector.head_state()
        self.held_scores = self.scores(self.held_idx) if held_scores is None else np.asarray(held_scores)
        keep = np.isfinite(self.held_scores)
        self.held_idx = [i for i, k in zip(self.held_idx, keep, strict=True) if k]
        self.held_scores = self.held_scores[keep]
        held_labels = labels[self.held_idx]
        self.threshold, self.threshold_source = 0.5, "fixed"
        if threshold_mode == "val" and len(set(held_labels.tolist())) == 2:
            self.threshold, self.threshold_source = fit_threshold(held_labels, self.held_scores), "val"
        elif threshold_mode == "fpr" and (held_labels == 0).any():
            self.threshold = fit_threshold_at_fpr(held_labels, self.held_scores, target_fpr)
            self.threshold_source = f"fpr {target_fpr:g}"
        self.n_train = len(self.fit_idx)

    @classmethod
    def on(cls, detector: Any, table: FeatureTable, samples: list[Sample], labels: np.ndarray, recipe: Recipe,
           train_idx: Sequence[int], seed: int, threshold_mode: str = "fpr",
           target_fpr: float = TARGET_FPR) -> HeadCell:
        """A cell trained on `train_idx`. "val": threshold on a held-out 15 % (by cluster), the head on the rest;
        "fpr": the head on all of `train_idx`, the threshold on out-of-fold scores of all of it."""
        idx = table.usable((*recipe.train_views, recipe.test_view), train_idx)
        if threshold_mode != "fpr":
            fit, held = holdout_split(samples, idx, seed)
            return cls(detector, table, labels, recipe, fit, held, seed, threshold_mode, target_fpr)
        oof = out_of_fold_scores(detector, table, samples, labels, recipe, idx, seed)
        return cls(detector, table, labels, recipe, idx, idx, seed, "fpr", target_fpr, held_scores=oof)

    def scores(self, idx: Sequence[int], view: str | None = None) -> np.ndarray:
        view = view or self.recipe.test_view
        d = self.detector
        d.load_head_state(self.state)
        out = np.full(len(idx), np.nan)
        have = [j for j, i in enumerate(idx) if self.table.feats[view][i] is not None]
        if have:  # one view's features share their crop count: one batched head call
            out[have] = _sigmoid(d.head_logits(np.stack([self.table.feats[view][idx[j]] for j in have])))
        return out


def out_of_fold_scores(detector: Any, table: FeatureTable, samples: list[Sample], labels: np.ndarray,
                       recipe: Recipe, idx: Sequence[int], seed: int, folds: int = OOF_FOLDS) -> np.ndarray:
    """Each index scored by a head fitted without its fold (folds by near-duplicate cluster, stratified)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.asarray(idx)
    groups = np.array([samples[i].group or str(samples[i].path) for i in idx])
    n = min(folds, len(set(groups.tolist())))
    out = np.full(len(idx), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer members of a class than folds: handled by sklearn
        splits = list(StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(idx, labels[idx], groups))
    for fit, test in splits:
        if len(set(labels[idx[fit]].tolist())) < 2:
            continue
        cell = HeadCell(detector, table, labels, recipe, idx[fit].tolist(), [], seed, "fixed")
        out[test] = cell.scores(idx[test].tolist())
    return out


class TrainedCell:
    """Any registered detector trained by the epoch trainer on `fit_idx` (validation and threshold on
    `held_idx`), scored through the same decode/crop/align path as `gendet detect`.

    Views: "grid" = the detector's own evaluation preprocessing; "deg:NAME" = that plus a Task 2
    degradation. Scores are cached per (view, index), so overlapping test sets score each file once.
    """

    def __init__(self, make_detector: Any, train_cfg: dict[str, Any], samples: list[Sample], labels: np.ndarray,
                 fit_idx: Sequence[int], held_idx: Sequence[int], seed: int, align: str, device: str = "cpu",
                 workers: int = 0) -> None:
        from gendet.models.checkpoint import load_checkpoint
        from gendet.training.state import seed_everything
        from gendet.training.trainer import TrainConfig, train

        self.samples, self.labels, self.device, self.workers, self.seed = samples, labels, device, workers, seed
        seed_everything(seed)
        detector = make_detector()
        self.pp = detector.preprocess(align=align)
        cfg = TrainConfig(**{"epochs": 2, "batch_size": 32, "lr": 3e-4, "patience": 0, "warmup": 0.1,
                             "save_every_steps": 0, **train_cfg, "seed": seed, "device": device, "workers": workers,
                             "threshold_mode": "val", "progress": False})
        with tempfile.TemporaryDirectory(prefix="gendet-cell-") as tmp:  # scratch run dir: the loaded model is kept
            summary = train(detector, [samples[i] for i in fit_idx], [samples[i] for i in held_idx], self.pp, cfg,
                            Path(tmp), extra_config={"data_root": "(genuine bench)"})
            self.detector, ckpt_cfg = load_checkpoint(tmp, device)
        self.threshold = float(ckpt_cfg["threshold"])
        self.threshold_source = str(ckpt_cfg["threshold_source"])
        self.n_train = len(fit_idx)
        self.summary = summary
        self._cache: dict[tuple[str, int], float] = {}

    def scores(self, idx: Sequence[int], view: str | None = None) -> np.ndarray:
        from gendet.evaluation.degradations import get_degradation
        from gendet.evaluation.inference import predict

        view = view or "grid"
        todo = [i for i in dict.fromkeys(idx) if (view, i) not in self._cache]
        if todo:
            deg = get_degradation(view.removeprefix("deg:")) if view.startswith("deg:") else None
            preds = predict(self.detector, [self.samples[i] for i in todo], self.pp, degradation=deg,
                            batch_size=32, workers=self.workers, device=self.device, seed=self.seed)
            got = {str(s.path): float(sc) for s, sc in zip(preds.samples, preds.scores, strict=True)}
            for i in todo:
                self._cache[(view, i)] = got.get(str(self.samples[i].path), float("nan"))
        return np.array([self._cache[(view, i)] for i in idx], dtype=np.float64)
