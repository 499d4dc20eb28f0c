"""HRR ablation on the local benchmark (`gendet bench --ablation hrr`): which of HRR's claims hold at this scale.

Variants, each trained on one subset's train split per seed and scored on every subset's val split:
- "dire": one scale, linear head, BCE (the single-scale residual baseline);
- "hrr w/o refinement": scales 1, 1/2, 1/4, linear head, BCE (isolates multi-scale retrospection);
- "hrr": scales 1, 1/2, 1/4 + additive refinement with the Welsch (correntropy) loss (the full model);
- "hrr (squared loss)": the same refinement with the squared loss (isolates the loss);
- both refinement losses again with 10% and 20% of the training labels flipped (seeded; train and
  holdout alike, as a user has no clean labels either; test labels are clean).
Measured: Task 1 (cross-generator accuracy/AUC, mean over all and over unseen subsets), Task 2 (the
degradations on the training subset's val split) and a size shift (val images resized to other
crop sizes than the 64 px trained on) for dire / hrr w/o refinement / hrr, and the components the
refinement kept. All variants share one reconstruction cache (memory, plus disk under the cache
dir), so the study pays for each (image, scale) reconstruction once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from gendet.bench.ablations import AblationOptions, compare, interval, pick_recipe
from gendet.data.layouts import list_subsets, read_samples, split_holdout, with_photo_groups
from gendet.data.sample import Sample
from gendet.evaluation.degradations import DEGRADATIONS
from gendet.evaluation.protocol import degradation_mean, degradation_table, evaluate
from gendet.models import create_detector
from gendet.models.checkpoint import CONFIG_FILE, load_checkpoint
from gendet.models.hrr.cache import configure_shared_cache, shared_cache
from gendet.models.hrr.retrospection import check_reconstructor
from gendet.training import TrainConfig, train
from gendet.training.state import mix_seed, seed_everything

# Schedules. "tiny" is the measured study (~20-25 min on 2 idle cores); "smoke" checks the pipeline.
RECIPES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 4, "batch_size": 32, "lr": 1e-3, "t": 0.15, "steps": 2, "test_sizes": [48, 96],
             "label_noise": [0.1, 0.2], "degradations": list(DEGRADATIONS), "max_per_class": None},
    "smoke": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "t": 0.15, "steps": 2, "test_sizes": [48, 96],
              "label_noise": [0.2], "degradations": ["resize_64", "jpeg_30", "blur_3"], "max_per_class": 64},
}
BASE_VARIANTS: dict[str, dict[str, Any]] = {
    "dire": {"detector": "dire", "config": {}},
    "hrr w/o refinement": {"detector": "hrr", "config": {"refine": "none"}},
    "hrr": {"detector": "hrr", "config": {}},
    "hrr (squared loss)": {"detector": "hrr", "config": {"refine_loss": "squared"}},
}
ROBUSTNESS_VARIANTS = ("dire", "hrr w/o refinement", "hrr")  # get Task 2 and the size shift
METRICS = ("acc_mean", "auc_mean", "acc_unseen", "auc_unseen", "task2_acc", "task2_auc", "size_auc", "size_drop",
           "n_kept")


def noisy_name(base: str, rate: float) -> str:
    return f"{base}, {round(rate * 100)}% label noise"


def variants_for(recipe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {name: {**spec, "label_noise": 0.0} for name, spec in BASE_VARIANTS.items()}
    for rate in recipe["label_noise"]:
        for base in ("hrr", "hrr (squared loss)"):
            out[noisy_name(base, rate)] = {**BASE_VARIANTS[base], "label_noise": float(rate)}
    return out


def inject_label_noise(samples: list[Sample], rate: float, seed: int) -> tuple[list[Sample], int]:
    """Flip round(rate * n) labels chosen by a generator seeded by (seed, rate); returns (samples, n flipped)."""
    n_flip = round(rate * len(samples))
    if n_flip == 0:
        return list(samples), 0
    rng = np.random.default_rng(mix_seed(seed, round(rate * 1000)))
    flip = set(rng.choice(len(samples), n_flip, replace=False).tolist())
    return [replace(s, label=1 - s.label) if i in flip else s for i, s in enumerate(samples)], n_flip


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _load_samples(root: Path, max_per_class: int | None) -> list[Sample]:
    samples = read_samples(root, layout="genimage")
    manifest = root / "manifest.json"
    if manifest.is_file():  # the local benchmark: group crops by source photo for the holdout
        samples = with_photo_groups(samples, json.loads(manifest.read_text()))
    if max_per_class is None:
        return samples
    seen: dict[tuple, int] = {}
    out = []
    for s in samples:
        key = (s.generator, s.split, s.label)
        if seen.get(key, 0) < max_per_class:
            seen[key] = seen.get(key, 0) + 1
            out.append(s)
    return out


def _train_or_reuse(out: Path, detector: str, config: dict[str, Any], cfg: TrainConfig, train_s: list[Sample],
                    val_s: list[Sample], align: str, key_extra: dict[str, Any]):
    """Train once; an identical rerun (same config, schedule, data and labels) loads the checkpoint instead."""
    labels = json.dumps(sorted((str(s.path), s.label) for s in [*train_s, *val_s]))
    key = {"detector": detector, "config": config, "train": {k: v for k, v in asdict(cfg).items() if k != "progress"},
           "labels_sha256": hashlib.sha256(labels.encode()).hexdigest(),
           # other reconstructor weights installed: retrain instead of failing on ReconstructorMismatch
           "reconstructor_sha256": check_reconstructor(str(config.get("reconstructor", "pixel_flow")), None),
           **key_extra}
    if (out / CONFIG_FILE).is_file() and json.loads((out / CONFIG_FILE).read_text()).get("ablation_key") == key:
        return load_checkpoint(out, cfg.device)[0]
    seed_everything(cfg.seed)
    det = create_detector(detector, **config)
    train(det, train_s, val_s, det.preprocess(align), cfg, out, extra_config={"ablation_key": key})
    return load_checkpoint(out, cfg.device)[0]


def _mean_auc(metrics: dict[str, Any]) -> float:
    return float(np.mean([m["auc"] for m in metrics["subsets"].values()]))


def _measure(det, name: str, test: list[Sample], own: list[Sample], train_subset: str, recipe: dict[str, Any],
             align: str, device: str, seed: int) -> dict[str, Any]:
    pp = det.preprocess(align)
    kw = {"batch_size": 128, "device": device, "seed": seed}
    cross, preds = evaluate(det, test, pp, 0.5, "fixed", dedupe_files=True, **kw)
    per = cross["subsets"]
    others = [g for g in per if g != train_subset]
    row: dict[str, Any] = {
        "seed": seed, "acc_mean": float(np.mean([m["acc"] for m in per.values()])), "auc_mean": _mean_auc(cross),
        "acc_unseen": float(np.mean([per[g]["acc"] for g in others])) if others else None,
        "auc_unseen": float(np.mean([per[g]["auc"] for g in others])) if others else None,
        "per_subset": {g: {"acc": m["acc"], "auc": m["auc"]} for g, m in per.items()},
    }
    if name in ROBUSTNESS_VARIANTS:
        clean = preds.subset(train_subset)
        table, _ = degradation_table(det, own, pp, 0.5, "fixed", names=recipe["degradations"],
                                     clean=clean if len(clean.samples) == len(own) else None, **kw)
        row.update(task2_acc=degradation_mean(table, "acc"), task2_auc=degradation_mean(table, "auc"),
                   task2={d: {"acc": m["acc"], "auc": m["auc"]} for d, m in table.items()})
        sizes = {size: _mean_auc(evaluate(det, test, replace(pp, size=size), 0.5, "fixed", dedupe_files=True,
                                          **kw)[0]) for size in recipe["test_sizes"]}
        row.update(size={str(k): v for k, v in sizes.items()}, size_auc=float(np.mean(list(sizes.values()))))
        row["size_drop"] = row["auc_mean"] - row["size_auc"]
    report = det.refinement_report()
    if report is not None:
        row.update(n_kept=report["n_kept"], n_components=report["n_components"], kept=report["kept"])
    return row


def run_ablation(data_root: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), recipe_name: str = "tiny",
                 train_subset: str = "latent_flow", align: str = "jpeg", device: str = "cpu",
                 cache_dir: Path | None = None, progress: bool = True, recipe: dict[str, Any] | None = None,
                 model_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and measure every variant for every seed; returns the ablation block of results.json.

    recipe: a schedule instead of RECIPES[recipe_name]; model_config: overrides for every variant (tests)."""
    t0 = time.monotonic()
    recipe = dict(recipe or RECIPES[recipe_name])
    samples = _load_samples(data_root, recipe.get("max_per_class"))
    if train_subset not in list_subsets(samples):
        raise ValueError(f"train subset {train_subset!r} not in the data ({', '.join(list_subsets(samples))})")
    if cache_dir is not None:
        configure_shared_cache(disk_dir=Path(cache_dir) / "hrr-recon")
    stats_before = shared_cache().stats.as_dict()
    test = [s for s in samples if s.split == "val"]
    own = [s for s in test if s.generator == train_subset]
    variants = variants_for(recipe)
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for seed in seeds:
        pool = [s for s in samples if s.generator == train_subset and s.split == "train"]
        train_s, val_s = split_holdout(pool, 0.1, seed)
        for name, spec in variants.items():
            noisy_train, n_tr = inject_label_noise(train_s, spec["label_noise"], seed)
            noisy_val, n_va = inject_label_noise(val_s, spec["label_noise"], seed + 1)
            config = {"t": recipe["t"], "steps": recipe["steps"], **spec["config"], **(model_config or {})}
            cfg = TrainConfig(epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"], warmup=0.1,
                              patience=0, seed=seed, device=device, progress=progress, save_every_steps=0)
            det = _train_or_reuse(out / _slug(name) / f"seed{seed}", spec["detector"], config, cfg, noisy_train,
                                  noisy_val, align, {"label_noise": spec["label_noise"]})
            row = _measure(det, name, test, own, train_subset, recipe, align, device, seed)
            rows[name].append({**row, "labels_flipped": n_tr + n_va})
    table = {name: {m: interval([r.get(m) for r in rs]) for m in METRICS} for name, rs in rows.items()}
    stats_after = shared_cache().stats.as_dict()
    n_components = next((r["n_components"] for r in rows["hrr"] if "n_components" in r), None)
    return {"variants": variants,
            "recipe": {"name": recipe_name, **recipe}, "model_config": model_config or {},
            "train_subset": train_subset, "seeds": list(seeds), "runs": rows, "table": table,
            "claims": claims(table, recipe, n_components), "robustness_variants": list(ROBUSTNESS_VARIANTS),
            "reconstruction_cache": {k: stats_after[k] - stats_before[k] for k in stats_after},
            "wall_s": round(time.monotonic() - t0, 1)}


def claims(table: dict[str, dict[str, dict[str, Any]]], recipe: dict[str, Any],
           n_components: int | None) -> dict[str, dict[str, Any]]:
    """HRR's claims, scaled down, on the means over seeds (reported whether or not they hold)."""
    out = {
        "multi-scale retrospection beats single-scale (DIRE): cross-generator AUC":
            compare(table, "hrr w/o refinement", "dire", "auc_mean"),
        "HRR beats DIRE on unseen generators (AUC)": compare(table, "hrr", "dire", "auc_unseen"),
        "the refinement improves the multi-scale model (cross-generator AUC)":
            compare(table, "hrr", "hrr w/o refinement", "auc_mean"),
        "HRR loses less AUC than DIRE when the test crop size differs from training":
            compare(table, "hrr", "dire", "size_drop", higher_is_better=False),
        "HRR is more robust than DIRE to Task 2 degradations (mean AUC)": compare(table, "hrr", "dire", "task2_auc"),
    }
    for rate in recipe["label_noise"]:
        out[f"correntropy beats the squared loss with {round(rate * 100)}% label noise (AUC)"] = compare(
            table, noisy_name("hrr", rate), noisy_name("hrr (squared loss)", rate), "auc_mean")
    kept = table["hrr"]["n_kept"]["mean"]
    known = kept is not None and n_components is not None
    out["the refinement drops redundant components (kept < given)"] = {
        "full": kept, "ablated": n_components, "p_value": None, "holds": bool(kept < n_components) if known else None}
    return out


def run_from_options(data_root: Path, out: Path, options: AblationOptions) -> dict[str, Any]:
    """`gendet bench --ablation hrr`: the options shared by every study, mapped to run_ablation."""
    recipe = pick_recipe(options, RECIPES, "tiny", "hrr")
    return run_ablation(data_root, out, options.seeds, recipe, options.train_subset, options.align,
                        device=options.device, cache_dir=options.cache_dir, progress=options.progress)
