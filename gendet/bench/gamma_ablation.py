"""GAMMA ablation on the local benchmark: full, w/o segmentation heads, w/o reverse cross-attention,
w/o manipulated training data, over seeds.

Data: the built local benchmark (`data_root`) plus its `manipulated` subset (built or reused next to
it, see gendet.bench.manipulated). Every variant trains on `train_subset`'s train split, and
those with manipulated data also on the manipulated subset's train split, for the same number of
optimizer steps (the smaller pool gets more epochs). Each is measured with the GenImage protocol at
image level (Task 1: every subset's val split, AUC/accuracy at 0.5; Task 2: the six degradations on
`train_subset`'s val split) and at pixel level per manipulation kind (F1, IoU, pixel-AUC). Runs and
their evaluations are reused when their key matches, so an interrupted ablation resumes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gendet.bench.ablations import AblationOptions, compare, interval, pick_recipe
from gendet.bench.manipulated import ManipulationConfig, build_manipulated_subset, manipulated_samples
from gendet.data.layouts import list_subsets, read_samples, split_holdout, with_photo_groups
from gendet.data.sample import Sample
from gendet.evaluation.pixel_metrics import pixel_report, predict_pixels, sample_kind
from gendet.evaluation.protocol import degradation_mean, degradation_table, evaluate
from gendet.generation.inpaint import INPAINTERS
from gendet.io import atomic_write_text
from gendet.models import create_detector
from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint
from gendet.models.gamma import CPU_CONFIG
from gendet.training.state import seed_everything
from gendet.training.trainer import ResumeError, TrainConfig, train

VARIANTS: dict[str, dict[str, bool]] = {
    "full": {"seg_heads": True, "rca": True, "manipulated": True},
    "w/o seg heads": {"seg_heads": False, "rca": True, "manipulated": True},
    "w/o RCA": {"seg_heads": True, "rca": False, "manipulated": True},
    "w/o manipulated data": {"seg_heads": True, "rca": True, "manipulated": False},
}
# "ablation": the measured schedule (see docs/decisions.md, GAMMA); "smoke": an end-to-end check.
RECIPES: dict[str, dict[str, Any]] = {
    "ablation": {"epochs": 3, "batch_size": 32, "lr": 1e-3, "warmup": 0.1, "weight_decay": 0.01},
    "smoke": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "warmup": 0.1, "weight_decay": 0.01, "max_steps": 2},
}
METRICS = ("auc_unseen", "acc_unseen", "auc_mean", "acc_mean", "manip_auc", "manip_acc", "degr_acc",
           "pixel_f1", "pixel_iou", "pixel_auc", "real_fp_rate")
EVAL_FILE = "gamma_eval.json"
SAMPLES_PER_KIND = 2  # sample masks shown in the report (seed of the first run)
GENERATED_PER_SUBSET = 40  # fully generated val images per subset in the pixel evaluation


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def manipulation_config(train_subset: str) -> ManipulationConfig:
    """Inpaint the training split only with the training subset's generator, so no other generator's
    traces reach training; val has every inpainter (an unseen one included)."""
    train_inpaint = (f"inpaint_{train_subset}",) if train_subset in INPAINTERS else ()
    return ManipulationConfig(kinds_train=(*train_inpaint, "copy_move", "splice"),
                              kinds_val=(*(f"inpaint_{g}" for g in INPAINTERS), "copy_move", "splice"))


def _train_variant(run_dir: Path, key: dict[str, Any], model_config: dict[str, Any], train_set: list[Sample],
                   val_set: list[Sample], cfg: TrainConfig, align: str) -> None:
    stored = json.loads((run_dir / CONFIG_FILE).read_text()).get("ablation_key") if (
        run_dir / CONFIG_FILE).is_file() else None
    if stored == key and (run_dir / WEIGHTS_FILE).is_file():
        return
    seed_everything(cfg.seed)  # initial weights depend on the seed only
    detector = create_detector("gamma", **model_config)
    resume = (run_dir / "train_state" / "last.pt").is_file() and not (run_dir / WEIGHTS_FILE).is_file()
    extra = {"data_root": "(gamma ablation)", "layout": "genimage", "ablation_key": key}
    try:
        train(detector, train_set, val_set, detector.preprocess(align), cfg, run_dir, resume=resume,
              extra_config=extra)
    except ResumeError:  # a stale state from other settings: start over
        seed_everything(cfg.seed)
        detector = create_detector("gamma", **model_config)
        train(detector, train_set, val_set, detector.preprocess(align), cfg, run_dir, extra_config=extra)


def _evaluate_run(run_dir: Path, key: dict[str, Any], test: list[Sample], pixel_set: list[Sample],
                  shown: list[Sample], train_subset: str, device: str, seed: int) -> dict[str, Any]:
    done = run_dir / EVAL_FILE
    if done.is_file():
        prev = json.loads(done.read_text())
        if prev.get("key") == key:
            return prev
    t0 = time.monotonic()
    detector, ckpt = load_checkpoint(run_dir, device)
    pp = detector.preprocess(key["align"])
    cross, preds = evaluate(detector, test, pp, 0.5, "fixed", batch_size=128, device=device, seed=seed,
                            dedupe_files=True)
    per = cross["subsets"]
    own = [s for s in test if s.generator == train_subset]
    clean = preds.subset(train_subset)
    degr, _ = degradation_table(detector, own, pp, 0.5, "fixed", batch_size=128, device=device, seed=seed,
                                clean=clean if len(clean.samples) == len(own) else None)
    unseen = [g for g in per if g not in (train_subset, "manipulated")]
    row: dict[str, Any] = {
        "key": key, "seed": seed,
        "acc_mean": float(np.mean([per[g]["acc"] for g in per])), "auc_mean": float(np.mean([per[g]["auc"]
                                                                                                for g in per])),
        "acc_unseen": float(np.mean([per[g]["acc"] for g in unseen])) if unseen else None,
        "auc_unseen": float(np.mean([per[g]["auc"] for g in unseen])) if unseen else None,
        "manip_acc": per.get("manipulated", {}).get("acc"), "manip_auc": per.get("manipulated", {}).get("auc"),
        "degr_acc": degradation_mean(degr, "acc"),
        "per_subset": {g: {"acc": per[g]["acc"], "auc": per[g]["auc"]} for g in per},
        "degradations": {k: {"acc": v["acc"], "auc": v["auc"]} for k, v in degr.items()},
        "pixel_f1": None, "pixel_iou": None, "pixel_auc": None, "real_fp_rate": None, "per_kind": None,
    }
    if key["variant"]["seg_heads"]:
        pixels = predict_pixels(detector, pixel_set, pp, batch_size=128, device=device, seed=seed)
        kinds = pixel_report(pixels, seed=seed)
        part = kinds.get("partial", {})
        row.update(pixel_f1=part.get("f1"), pixel_iou=part.get("iou"), pixel_auc=part.get("pixel_auc"),
                   real_fp_rate=kinds.get("real", {}).get("fp_rate"), per_kind=kinds)
        if shown:
            sp = predict_pixels(detector, shown, pp, batch_size=len(shown), device=device, seed=seed)
            np.savez_compressed(run_dir / "sample_masks.npz", prob=sp.prob.astype(np.float16), truth=sp.truth)
    row["seconds_train"] = round(sum(ckpt.get("seconds_per_epoch") or []), 1)
    row["seconds_eval"] = round(time.monotonic() - t0, 1)
    atomic_write_text(done, json.dumps(row, indent=2))
    return row


def _shown_samples(samples: list[Sample]) -> list[Sample]:
    """SAMPLES_PER_KIND manipulated val images of each kind (the first ones: fixed across runs)."""
    out: list[Sample] = []
    for kind in sorted({sample_kind(s) for s in samples if s.label == 1}):
        out += [s for s in samples if s.label == 1 and sample_kind(s) == kind][:SAMPLES_PER_KIND]
    return out


def run_gamma_ablation(data_root: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), recipe_name: str = "ablation",
                       train_subset: str = "latent_flow", align: str = "jpeg", device: str = "cpu",
                       manipulated_root: Path | None = None, progress: bool = True,
                       model_config: dict[str, Any] | None = None, recipe: dict[str, Any] | None = None,
                       variants: dict[str, dict[str, bool]] | None = None) -> dict[str, Any]:
    """Train and measure every variant for every seed; returns the ablation block of results.json."""
    recipe = dict(recipe or RECIPES[recipe_name])
    model_config = {**CPU_CONFIG, **(model_config or {})}
    variants = variants or VARIANTS
    base_info = _read_base_manifest(data_root)
    base = with_photo_groups(read_samples(data_root, layout="genimage"), base_info)
    if train_subset not in list_subsets(base):
        raise ValueError(f"train subset {train_subset!r} not in the data ({', '.join(list_subsets(base))})")
    manip_root = manipulated_root or out / "manipulated-data"
    manip_info = build_manipulated_subset(data_root, manip_root, manipulation_config(train_subset), progress)
    manip = manipulated_samples(manip_root)
    test = [s for s in base + manip if s.split == "val"]
    rng = np.random.default_rng(0)
    generated = []
    for g in list_subsets(base):
        pool = [s for s in base if s.generator == g and s.split == "val" and s.label == 1]
        generated += [pool[i] for i in sorted(rng.permutation(len(pool))[:GENERATED_PER_SUBSET])]
    pixel_set = [s for s in manip if s.split == "val"] + generated
    shown = _shown_samples([s for s in manip if s.split == "val"])
    data_key = {"base": base_info.get("key"), "manipulated": manip_info["key"], "train_subset": train_subset}
    pools = {True: [s for s in base + manip if s.split == "train" and s.generator in (train_subset, "manipulated")],
             False: [s for s in base if s.split == "train" and s.generator == train_subset]}
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    steps: dict[str, int] = {}
    for seed in seeds:
        splits = {m: split_holdout(pool, 0.1, seed) for m, pool in pools.items()}
        full_steps = recipe["epochs"] * math.ceil(len(splits[True][0]) / recipe["batch_size"])
        for name, sw in variants.items():
            tr, va = splits[sw["manipulated"]]
            epochs = max(1, round(full_steps / math.ceil(len(tr) / recipe["batch_size"])))
            cfg = TrainConfig(**{**recipe, "epochs": epochs}, seed=seed, device=device, patience=0,
                              save_every_steps=0, progress=progress)
            steps[name] = cfg.max_steps or epochs * math.ceil(len(tr) / recipe["batch_size"])
            mc = {**model_config, "seg_heads": sw["seg_heads"], "rca": sw["rca"]}
            key = {"variant": sw, "model": mc, "train": {k: v for k, v in asdict(cfg).items() if k != "progress"},
                   "data": data_key, "align": align}
            run_dir = out / "runs" / slug(name) / f"seed{seed}"
            _train_variant(run_dir, key, mc, tr, va, cfg, align)
            row = _evaluate_run(run_dir, key, test, pixel_set, shown if seed == seeds[0] else [], train_subset,
                                device, seed)
            rows[name].append({k: v for k, v in row.items() if k != "key"})
    table = {name: {m: interval([r[m] for r in rs]) for m in METRICS} for name, rs in rows.items()}
    return {"variants": variants, "recipe": {"name": recipe_name, **recipe}, "steps": steps,
            "model_config": model_config, "train_subset": train_subset, "seeds": list(seeds),
            "manipulated_root": str(manip_root), "manipulation": manip_info["config"],
            "mask_encoding": manip_info["mask_encoding"], "runs": rows, "table": table,
            "claims": _claims(table, variants),
            "sample_masks": {"paths": [str(s.path) for s in shown], "masks": [str(s.mask) for s in shown],
                             "kinds": [sample_kind(s) for s in shown],
                             "runs": {n: str(out / "runs" / slug(n) / f"seed{seeds[0]}" / "sample_masks.npz")
                                      for n, sw in variants.items() if sw["seg_heads"]}}}


def _read_base_manifest(root: Path) -> dict[str, Any]:
    from gendet.bench.tiny_genimage import read_manifest

    return read_manifest(root) or {}


CLAIMS = (
    ("Segmentation heads improve cross-generator detection (unseen AUC)", "w/o seg heads", "auc_unseen"),
    ("Reverse cross-attention improves cross-generator detection (unseen AUC)", "w/o RCA", "auc_unseen"),
    ("Manipulated training data improves cross-generator detection (unseen AUC)", "w/o manipulated data",
     "auc_unseen"),
    ("Manipulated training data improves robustness to degradations (Task 2 mean acc)", "w/o manipulated data",
     "degr_acc"),
    ("Segmentation heads improve detection of partial manipulations (manipulated-subset AUC)", "w/o seg heads",
     "manip_auc"),
    ("Manipulated training data improves localisation of partial manipulations (pixel F1)",
     "w/o manipulated data", "pixel_f1"),
)


def _claims(table: dict[str, dict[str, dict[str, Any]]], variants: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The paper's claims, scaled down, checked on the means over seeds (reported whether or not they hold)."""
    return {text: compare(table, "full", ablated, metric) for text, ablated, metric in CLAIMS
            if "full" in variants and ablated in variants}


def run_from_options(data_root: Path, out: Path, options: AblationOptions) -> dict[str, Any]:
    """`gendet bench --ablation gamma`: the shared options mapped to run_gamma_ablation; the manipulated
    subset is cached next to the other benchmark data."""
    recipe = pick_recipe(options, RECIPES, "ablation", "gamma")
    cache = Path(options.cache_dir) if options.cache_dir else out
    manip_root = cache / f"{Path(data_root).name}-manipulated"
    return run_gamma_ablation(data_root, out, options.seeds, recipe, options.train_subset, options.align,
                              options.device, manipulated_root=manip_root, progress=options.progress)
