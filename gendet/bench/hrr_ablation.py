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
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from gendet.bench.study import compare, run_study, slug
from gendet.bench.tiny_study import TinyStudy, cross_generator_row, finished
from gendet.data.sample import Sample
from gendet.evaluation.degradations import DEGRADATIONS
from gendet.evaluation.protocol import degradation_mean, degradation_table, evaluate
from gendet.models import create_detector
from gendet.models.checkpoint import load_checkpoint
from gendet.models.hrr.cache import configure_shared_cache, shared_cache
from gendet.models.hrr.retrospection import check_reconstructor
from gendet.report import plots
from gendet.report.builder import ReportBuilder, format_value
from gendet.report.study import plus_minus
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
METRICS = ("auc_mean", "auc_unseen", "acc_mean", "acc_unseen", "task2_acc", "task2_auc", "size_auc", "size_drop",
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


def _train_or_reuse(out: Path, detector: str, config: dict[str, Any], cfg: TrainConfig, train_s: list[Sample],
                    val_s: list[Sample], align: str, key_extra: dict[str, Any]) -> Any:
    """Train once; an identical rerun (same config, schedule, data and labels) loads the checkpoint instead."""
    labels = json.dumps(sorted((str(s.path), s.label) for s in [*train_s, *val_s]))
    key = {"detector": detector, "config": config, "train": {k: v for k, v in asdict(cfg).items() if k != "progress"},
           "labels_sha256": hashlib.sha256(labels.encode()).hexdigest(),
           # other reconstructor weights installed: retrain instead of failing on ReconstructorMismatch
           "reconstructor_sha256": check_reconstructor(str(config.get("reconstructor", "pixel_flow")), None),
           **key_extra}
    if not finished(out, key):
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
    row = cross_generator_row(cross["subsets"], train_subset)
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


class HRRTinyStudy(TinyStudy):
    name, title = "hrr", "HRR ablation"
    metrics = METRICS
    recipes, default_recipe = RECIPES, "tiny"
    protocol = ("dire: one scale, linear head (BCE). hrr w/o refinement: scales 1, 1/2, 1/4, linear head (BCE). hrr: "
                "the same with the additive refinement (Welsch loss, group sparsity, KL bottleneck). Accuracy at "
                "the fixed threshold 0.5 and AUC on every subset's val split; 'unseen' leaves out the training "
                "subset. Mean ± 95% t-interval over seeds.")

    def prepare(self) -> None:
        self.samples = self.load_samples(self.recipe.get("max_per_class"))
        if self.cache_dir is not None:
            configure_shared_cache(disk_dir=self.cache_dir / "hrr-recon")
        self.stats_before = shared_cache().stats.as_dict()
        self.test = [s for s in self.samples if s.split == "val"]
        self.own = [s for s in self.test if s.generator == self.train_subset]
        self.variants = variants_for(self.recipe)
        self.n_components: int | None = None

    def variant_names(self) -> list[str]:
        return list(self.variants)

    def run_seed(self, seed: int, first: bool) -> dict[str, dict[str, Any]]:
        r = self.recipe
        pool = [s for s in self.samples if s.generator == self.train_subset and s.split == "train"]
        train_s, val_s = self.holdout(pool, seed)
        rows: dict[str, dict[str, Any]] = {}
        for name, spec in self.variants.items():
            noisy_train, n_tr = inject_label_noise(train_s, spec["label_noise"], seed)
            noisy_val, n_va = inject_label_noise(val_s, spec["label_noise"], seed + 1)
            config = {"t": r["t"], "steps": r["steps"], **spec["config"], **self.model_config}
            cfg = TrainConfig(epochs=r["epochs"], batch_size=r["batch_size"], lr=r["lr"], warmup=0.1, patience=0,
                              seed=seed, device=self.device, progress=self.progress, save_every_steps=0)
            det = _train_or_reuse(self.out / slug(name) / f"seed{seed}", spec["detector"], config, cfg, noisy_train,
                                  noisy_val, self.align, {"label_noise": spec["label_noise"]})
            row = _measure(det, name, self.test, self.own, self.train_subset, r, self.align, self.device, seed)
            rows[name] = {**row, "labels_flipped": n_tr + n_va}
            if name == "hrr" and self.n_components is None:
                self.n_components = row.get("n_components")
        return rows

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return claims(table, self.recipe, self.n_components)

    def summary(self) -> dict[str, Any]:
        after = shared_cache().stats.as_dict()
        return {"variants": self.variants, "model_config": self.model_config, "train_subset": self.train_subset,
                "robustness_variants": list(ROBUSTNESS_VARIANTS),
                "reconstruction_cache": {k: after[k] - self.stats_before[k] for k in after}}

    @classmethod
    def report_sections(cls, rb: ReportBuilder, ab: dict[str, Any], out_dir: Path) -> None:
        rec, table, runs = ab["recipe"], ab["table"], ab["runs"]
        cache = ab.get("reconstruction_cache", {})
        rb.add_key_values({"reconstruction": f"t = {rec['t']}, {rec['steps']} Euler steps; {cache.get('misses', 0)} "
                                             f"computed, {cache.get('hits', 0)} memory hits, "
                                             f"{cache.get('disk_hits', 0)} disk hits"})
        robust = [v for v in ab.get("robustness_variants", []) if v in table]
        rb.add_table([{"variant": v, **{d: format_value(_mean_of(runs[v], "task2", d, "auc"))
                                        for d in (runs[v][0].get("task2") or {})},
                       "mean AUC (degraded)": plus_minus(table[v]["task2_auc"]),
                       "mean acc (degraded)": plus_minus(table[v]["task2_acc"])} for v in robust],
                     caption=f"Task 2: AUC on {ab['train_subset']}'s val split under each degradation")
        rb.add_table([{"variant": v, "trained size": plus_minus(table[v]["auc_mean"]),
                       **{f"{s} px": format_value(_mean_of(runs[v], "size", str(s))) for s in rec["test_sizes"]},
                       "AUC drop": plus_minus(table[v]["size_drop"])} for v in robust],
                     caption="Size shift: mean AUC over subsets when the val crops are resized to other sizes")
        noisy = [(0.0, "hrr", "hrr (squared loss)")] + [(x, noisy_name("hrr", x), noisy_name("hrr (squared loss)", x))
                                                        for x in rec["label_noise"]]
        rb.add_table([{"label noise": f"{round(x * 100)}%", "correntropy (Welsch) AUC":
                       plus_minus(table[w]["auc_mean"]), "squared-loss AUC": plus_minus(table[q]["auc_mean"])}
                      for x, w, q in noisy],
                     caption="Robustness of the refinement loss to flipped training labels (cross-generator AUC)")
        rb.add_figure(plots.grouped_bars({"correntropy": {f"{round(x * 100)}%": table[w]["auc_mean"]["mean"]
                                                          for x, w, _ in noisy},
                                          "squared": {f"{round(x * 100)}%": table[q]["auc_mean"]["mean"]
                                                      for x, _, q in noisy}}, title="AUC vs label noise", ylabel="AUC"),
                      caption="Refinement loss under label noise")
        counts: Counter[str] = Counter(name.split("/")[0] for r in runs.get("hrr", []) for name in r.get("kept", []))
        if counts:
            rb.add_table([{"group": g, "kept components (mean over seeds)": round(c / len(runs["hrr"]), 1)}
                          for g, c in sorted(counts.items())],
                         caption="Components the refinement of 'hrr' kept, by scale (s1 = full size) and fused "
                                 "channels")


def _mean_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    vals = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if v is not None:
            vals.append(float(v))
    return float(np.mean(vals)) if vals else None


def run_ablation(data_root: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), recipe_name: str | None = None,
                 train_subset: str = "latent_flow", **options: Any) -> dict[str, Any]:
    """Train and measure every variant for every seed; returns the ablation block of results.json. Options as
    for HRRTinyStudy (recipe: a schedule instead of RECIPES[recipe_name]; model_config: overrides for every
    variant, for tests)."""
    return run_study(HRRTinyStudy(data_root, out, recipe_name, train_subset, **options), seeds)


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
