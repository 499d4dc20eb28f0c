"""`gendet bench --preset genuine --data MANIFEST`: real generators vs camera photos, honestly split.

Data: a manifest (path, label, split, generator = leave-one-out group, group = near-duplicate
cluster, source_set for photos), e.g. shared/data/genuine/MANIFEST.csv. Splits come from the
manifest (by cluster); the generator group `edited` (real photos edited by a generator) is
never trained on and is reported on its own.

Cells, each a linear head on cached frozen-backbone features (gendet.evaluation.feature_cache),
with its threshold fitted on a held-out part (by cluster) of that cell's *training* data:
- leave-one-group-out (Task 1): train on every group but g (train split) + the real train
  split; test on all of g's images (none was trained on) against the real val split; also
  reported on g's val split alone;
- train-on-one matrix: train on g's train split + real train; test on every group's val split;
- `all`: train on every group's train split; test on the val split clean and under the six
  Task 2 degradations; per real source set false-positive rates; the edited set;
- recipes: the transfer recipe (crops of varied scale, Blur+JPEG, multi-crop test scoring) and
  each part removed, plus the resized whole-image view, each with its leave-one-out table.
Real and generated images take the same path (decode -> crop -> JPEG alignment -> model).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gendet.bench.genuine_autoencoder import prepare_frozen_parts
from gendet.bench.genuine_cells import (
    HOLDOUT,
    OOF_FOLDS,
    TARGET_FPR,
    HeadCell,
    Recipe,
    TrainedCell,
    compute_table,
    holdout_split,
    make_views,
    recipes,
)
from gendet.data.layouts import read_samples
from gendet.data.sample import Sample
from gendet.evaluation.degradations import DEGRADATIONS
from gendet.evaluation.feature_cache import FeatureCache, model_key, sample_digests
from gendet.evaluation.metrics import compute_metrics
from gendet.models import create_detector
from gendet.models.hooks import HeadFitting
from gendet.version import VERSION

EXCLUDED_GROUPS = ("edited",)  # evaluated, never trained on
MIN_SET_FOR_GOAL = 20  # real source sets at least this large carry the false-positive goal


def _metrics(labels: np.ndarray, scores: np.ndarray, threshold: float,
             source: str = "the cell's training data") -> dict[str, Any]:
    keep = np.isfinite(scores)
    m = compute_metrics(labels[keep], scores[keep], threshold, source)
    m["n_real"], m["n_fake"] = int((labels[keep] == 0).sum()), int((labels[keep] == 1).sum())
    m["fpr"] = None if m["real_acc"] is None else 1.0 - m["real_acc"]
    return m


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(vals)) if vals else None


def _file_format(s: Sample) -> str:
    return str(s.extra.get("format") or s.path.suffix.lstrip(".")).upper().replace("JPG", "JPEG")


def _format_split(samples: list[Sample], labels: np.ndarray, idx: Sequence[int], scores: np.ndarray) -> dict[str, Any]:
    """AUC per (generated file format, real file format) on the same scores: how much the container leaks
    through alignment (crops keep a JPEG's 8x8 grid, so earlier compression can stay visible)."""
    fmts = [_file_format(samples[i]) for i in idx]
    y = labels[list(idx)]
    out: dict[str, Any] = {}
    for ff in sorted({f for f, lab in zip(fmts, y, strict=True) if lab == 1}):
        for fr in sorted({f for f, lab in zip(fmts, y, strict=True) if lab == 0}):
            keep = [j for j, (f, lab) in enumerate(zip(fmts, y, strict=True))
                    if (lab == 1 and f == ff) or (lab == 0 and f == fr)]
            m = _metrics(y[keep], scores[keep], 0.5)
            if m["n_real"] >= 5 and m["n_fake"] >= 5:
                out[f"generated {ff} vs real {fr}"] = {"auc": m["auc"], "n_fake": m["n_fake"], "n_real": m["n_real"]}
    return out


def real_set_rates(samples: Sequence[Sample], scores: Sequence[float], threshold: float) -> dict[str, Any]:
    """Per real source set (`source_set` column): photos scored and the share called generated."""
    by_set: dict[str, list[bool]] = {}
    for s, sc in zip(samples, scores, strict=True):
        if s.label == 0:
            by_set.setdefault(str(s.extra.get("source_set") or "(unnamed)"), []).append(bool(sc >= threshold))
    return {k: {"n": len(v), "fpr": float(np.mean(v))} for k, v in sorted(by_set.items())}


def read_genuine(data: Path) -> list[Sample]:
    samples = read_samples(data)
    bad = [s for s in samples if s.label == 1 and not s.generator]
    if bad:
        raise ValueError(f"{len(bad)} generated rows have no 'generator' group (e.g. {bad[0].path}); the "
                         "leave-one-group-out protocol needs one per generated image")
    return samples


def _summarise_recipe(rec: dict[str, Any], cell: Any, recipe: Recipe, samples: list[Sample], labels: np.ndarray,
                      val_gen: list[int], edited_idx: list[int], degradations: Sequence[str]) -> np.ndarray:
    """One recipe's leave-one-out means, and its all-groups head (`cell`): val split clean and under each
    degradation, per real source set, per file format, the edited set. Returns the clean val scores."""
    aucs = [m["auc"] for m in rec["logo"].values()]
    rec["logo_mean_auc"], rec["logo_min_auc"] = _mean(aucs), min((a for a in aucs if a is not None), default=None)
    rec["logo_mean_auc_val_only"] = _mean([m["auc_val_only"] for m in rec["logo"].values()])
    rec["logo_mean_fpr"] = _mean([m["fpr"] for m in rec["logo"].values()])
    rec["logo_mean_tpr"] = _mean([m["fake_acc"] for m in rec["logo"].values()])
    sc = cell.scores(val_gen)
    rec["all"] = {"threshold": cell.threshold, "n_train": cell.n_train,
                  "val": _metrics(labels[val_gen], sc, cell.threshold, cell.threshold_source)}
    task2 = {"none": rec["all"]["val"]}
    if recipe.test_view == "grid":
        for d in degradations:
            task2[d] = _metrics(labels[val_gen], cell.scores(val_gen, view=f"deg:{d}"), cell.threshold,
                                cell.threshold_source)
    rec["task2"] = {d: {"auc": m["auc"], "acc": m["acc"], "fpr": m["fpr"], "tpr": m["fake_acc"]}
                    for d, m in task2.items()}
    rec["task2_mean_auc"] = _mean([m["auc"] for d, m in task2.items() if d != "none"])
    rec["real_sets"] = {k: {**v, "goal_applies": v["n"] >= MIN_SET_FOR_GOAL}
                        for k, v in real_set_rates([samples[i] for i in val_gen], sc, cell.threshold).items()}
    rec["by_format"] = _format_split(samples, labels, val_gen, sc)
    if edited_idx:
        rec["edited"] = _metrics(labels[edited_idx], cell.scores(edited_idx), cell.threshold, cell.threshold_source)
    return sc


def run_genuine_bench(
    data: Path, cache_dir: Path, detector_name: str = "probe", detector_config: dict[str, Any] | None = None,
    seed: int = 0, align: str = "jpeg", n_draws: int = 2, recipe_names: Sequence[str] | None = None,
    degradations: Sequence[str] = tuple(DEGRADATIONS), device: str = "cpu", workers: int = 0,
    progress: bool = True, command: str = "", label: str | None = None, train_cfg: dict[str, Any] | None = None,
    threshold_mode: str = "fpr", target_fpr: float = TARGET_FPR,
) -> dict[str, Any]:
    """The genuine benchmark for one detector: probe-style ones (`fit_head`) as heads on cached features,
    every recipe; any other registered detector trained per cell with `train_cfg` (TrainConfig fields)."""
    t0 = time.monotonic()
    samples = read_genuine(data)
    labels = np.array([int(s.label) for s in samples])
    torch.manual_seed(seed)
    detector = create_detector(detector_name, **(detector_config or {}))
    frozen_info = prepare_frozen_parts(detector, [s for s in samples if s.split == "train"], cache_dir, seed, progress)
    train_idx = [i for i, s in enumerate(samples) if s.split == "train" and s.generator not in EXCLUDED_GROUPS]
    val_idx = [i for i, s in enumerate(samples) if s.split != "train"]
    real_val = [i for i in val_idx if labels[i] == 0]
    groups = sorted({s.generator for s in samples if s.label == 1 and s.generator not in EXCLUDED_GROUPS})
    errors: dict[str, str] = {}
    counts = {"computed": 0, "cached": 0}
    t_feat = time.monotonic()
    views: dict[str, Any] = {}
    if isinstance(detector, HeadFitting):
        all_recipes = recipes(n_draws)
        chosen = [all_recipes[r] for r in (recipe_names or list(all_recipes))]
        views = make_views(detector, align, seed, n_draws, degradations)
        needed = sorted({v for r in chosen for v in (*r.train_views, r.test_view)} | {"grid"}, key=list(views).index)
        views = {k: v for k, v in views.items() if k in needed or k.startswith("deg:")}
        # every image for the test views; training views for training images; degraded views for val
        jobs = [(views[v], list(range(len(samples))) if not views[v].train else train_idx) for v in needed]
        jobs += [(views[f"deg:{d}"], val_idx) for d in degradations]
        table, errors, counts = compute_table(detector, samples, sample_digests(samples), jobs,
                                              FeatureCache(cache_dir, model_key(detector)), workers, device,
                                              progress)

        def make_cell(recipe: Recipe, idx: list[int]) -> Any:
            return HeadCell.on(detector, table, samples, labels, recipe, idx, seed, threshold_mode, target_fpr)
    else:  # any other detector: trained per cell by the epoch trainer (slow; no train-on-one matrix)
        own = Recipe("default", f"{detector_name}'s own training recipe (epoch trainer)", (), "grid")
        all_recipes, chosen = {"default": own}, [own]

        def make_cell(recipe: Recipe, idx: list[int]) -> Any:
            fit, held = holdout_split(samples, idx, seed)
            return TrainedCell(lambda: create_detector(detector_name, **(detector_config or {})), train_cfg or {},
                               samples, labels, fit, held, seed, align, device, workers)
    seconds_features = time.monotonic() - t_feat

    t_cells = time.monotonic()
    by_group = {g: [i for i, s in enumerate(samples) if s.generator == g] for g in [*groups, *EXCLUDED_GROUPS]}
    out_recipes: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    cells = [(r, g) for r in chosen for g in groups]
    for r, g in tqdm(cells, desc="leave-one-out heads", unit="cell", disable=not progress):
        tr = [i for i in train_idx if labels[i] == 0 or samples[i].generator != g]
        cell = make_cell(r, tr)
        test = by_group[g] + real_val
        sc = cell.scores(test)
        m = _metrics(labels[test], sc, cell.threshold, cell.threshold_source)
        val_only = [i for i in by_group[g] if samples[i].split != "train"] + real_val
        m_val = _metrics(labels[val_only], cell.scores(val_only), cell.threshold, cell.threshold_source)
        m["auc_val_only"], m["n_fake_val_only"] = m_val["auc"], m_val["n_fake"]
        m["threshold"], m["n_train"] = cell.threshold, cell.n_train
        out_recipes.setdefault(r.name, {"description": r.description, "logo": {}})["logo"][g] = m
        if r.name == "default":
            curves[g] = {"labels": labels[test].tolist(), "scores": np.round(sc, 6).tolist()}
    val_gen = [i for i in val_idx if samples[i].generator not in EXCLUDED_GROUPS]
    edited_test = by_group["edited"] + real_val if by_group.get("edited") else []
    for r in chosen:
        sc = _summarise_recipe(out_recipes[r.name], make_cell(r, train_idx), r, samples, labels, val_gen,
                               edited_test, degradations)
        if r.name == "default":
            curves["_calibration"] = {"labels": labels[val_gen].tolist(), "scores": np.round(sc, 6).tolist()}
    # train-on-one matrix (default recipe)
    matrix: dict[str, dict[str, float | None]] = {}
    base = all_recipes["default"] if "default" in out_recipes else chosen[0]
    for g in tqdm(groups if views else [], desc="train-on-one heads", unit="cell", disable=not progress):
        tr = [i for i in train_idx if labels[i] == 0 or samples[i].generator == g]
        cell = make_cell(base, tr)
        row = {}
        for h in groups:
            test = [i for i in by_group[h] if samples[i].split != "train"] + real_val
            row[h] = _metrics(labels[test], cell.scores(test), cell.threshold)["auc"]
        matrix[g] = row
    seconds_cells = time.monotonic() - t_cells

    n = {"real": {"train": int(sum(1 for i in train_idx if labels[i] == 0)), "val": len(real_val)},
         "groups": {g: {"train": sum(1 for i in by_group[g] if samples[i].split == "train"),
                        "val": sum(1 for i in by_group[g] if samples[i].split != "train")}
                    for g in by_group}}
    return {
        "preset": "genuine",
        "command": command,
        "seed": seed,
        "align": align,
        "gendet_version": VERSION,
        "data": {"manifest": str(data), "n_files": len(samples), "counts": n},
        "detector": {"label": label or detector_name, "name": detector_name, "config": detector.config,
                     **({"autoencoder": frozen_info} if frozen_info else {})},
        "groups": groups,
        "protocol": {
            "logo_test": "all images of the held-out group (none trained on) vs the real val split",
            "threshold": (f"at most {target_fpr:.0%} of the cell's training photos called generated, on "
                          f"{OOF_FOLDS}-fold out-of-fold scores (folds by near-duplicate cluster); the head itself "
                          "is fitted on all of the cell's training data" if threshold_mode == "fpr" and views else
                          f"balanced accuracy on a {HOLDOUT:.0%} hold-out (by near-duplicate cluster) of each "
                          "cell's training data"),
            "views": {k: {"pp": v.pp.to_dict(), "train": v.train, "augment": v.augment,
                          "degradation": v.degradation} for k, v in views.items()},
        },
        "recipes": out_recipes,
        "train_on_one": matrix,
        "curves": curves,
        "errors": [{"path": p, "reason": r} for p, r in sorted(errors.items())],
        "timings": {"features_s": round(seconds_features, 1), "heads_s": round(seconds_cells, 1),
                    "total_s": round(time.monotonic() - t0, 1), **counts},
    }


def score_checkpoint_on_genuine(ckpt: Path, data: Path, device: str = "cpu", workers: int = 0,
                                progress: bool = True) -> dict[str, Any]:
    """A trained checkpoint (e.g. the shipped `fast` model) on the genuine set as it stands: per group,
    its val + (never-trained-on) images vs the real val split, at the checkpoint's own threshold."""
    from gendet.detect.model import load_scan_model
    from gendet.evaluation.inference import predict

    model = load_scan_model(ckpt, device=device)
    samples = read_genuine(data)
    preds = predict(model.detector, samples, model.preprocess, batch_size=64, workers=workers, device=device,
                    progress="scoring checkpoint" if progress else False)
    pairs_all = list(zip(preds.samples, preds.scores, strict=True))
    real_val = [(s, sc) for s, sc in pairs_all if s.label == 0 and s.split != "train"]
    out: dict[str, Any] = {"model": model.name, "threshold": model.threshold, "groups": {}}
    for g in sorted({s.generator for s in preds.samples if s.label == 1}):
        fake = [(s, sc) for s, sc in zip(preds.samples, preds.scores, strict=True) if s.generator == g]
        pairs = fake + real_val
        m = compute_metrics(np.array([s.label for s, _ in pairs]), np.array([sc for _, sc in pairs]),
                            model.threshold, model.threshold_source)
        out["groups"][g] = {"auc": m["auc"], "tpr": m["fake_acc"], "fpr": 1 - m["real_acc"]}
    out["mean_auc"] = _mean([v["auc"] for g, v in out["groups"].items() if g not in EXCLUDED_GROUPS])
    return out


def fit_probe(
    detector: Any, train: Sequence[Sample], held: Sequence[Sample], cache_dir: Path, align: str = "jpeg",
    seed: int = 0, recipe: str = "default", n_draws: int = 2, threshold_mode: str = "fpr",
    target_fpr: float = TARGET_FPR, device: str = "cpu", workers: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """Fit a probe's head on the recipe's (cached) views and its threshold, leaving the fitted head in
    `detector`; returns what config.json records about the fit.

    threshold_mode "fpr": the head on `train` + `held`, the threshold on out-of-fold scores of all of them
    (at most `target_fpr` of the photos above it); "val": the head on `train`, the threshold (balanced
    accuracy) on `held`; "fixed": 0.5."""
    t0 = time.monotonic()
    samples = [*train, *held]
    labels = np.array([int(s.label) for s in samples])
    prepare_frozen_parts(detector, list(train), cache_dir, seed, progress)  # the held part never trains the frozen AE
    r = recipes(n_draws)[recipe]
    views = make_views(detector, align, seed, n_draws, ())
    every = list(range(len(samples)))
    fit_idx, held_idx = (every, every) if threshold_mode == "fpr" else (every[:len(train)], every[len(train):])
    jobs = [(views[v], fit_idx) for v in r.train_views] + [(views[r.test_view], held_idx)]
    table, errors, counts = compute_table(detector, samples, sample_digests(samples), jobs,
                                          FeatureCache(cache_dir, model_key(detector)), workers, device, progress)
    if threshold_mode == "fpr":
        cell = HeadCell.on(detector, table, samples, labels, r, every, seed, "fpr", target_fpr)
    else:
        cell = HeadCell(detector, table, labels, r, fit_idx, held_idx, seed, threshold_mode, target_fpr)
    cell.scores([])  # leaves the fitted head in the detector
    val_metrics = None
    if cell.held_idx and len(set(labels[cell.held_idx].tolist())) == 2:
        val_metrics = compute_metrics(labels[cell.held_idx], cell.held_scores, cell.threshold, cell.threshold_source)
    return {"solver": "head (logistic regression on cached features)", "recipe": recipe,
            "recipe_description": r.description, "train_views": list(r.train_views), "n_draws": n_draws,
            "threshold": cell.threshold, "threshold_source": cell.threshold_source,
            "threshold_val": cell.threshold if cell.threshold_source != "fixed" else None,
            "target_fpr": target_fpr if threshold_mode == "fpr" else None,
            "val_metrics": val_metrics, "val_metrics_source": ("out-of-fold scores of the training data"
                                                               if threshold_mode == "fpr" else "held-out part"),
            "n_train": len(cell.fit_idx), "n_val": len(cell.held_idx),
            "decode_errors": {"files": [{"path": p, "reason": e} for p, e in sorted(errors.items())]},
            "features": counts, "seconds": round(time.monotonic() - t0, 1)}
