"""UniGenDet ablation on the local benchmark: full, w/o SMSA, w/o GDUF, w/o DIGA, over seeds.

The variants differ only by three switches:
- smsa: detection reads vision + clean latent tokens (on) or vision tokens only (off);
- gduf: one model trained jointly on detection + generation data (on), or a detector and a
  generator trained separately with the same steps (off);
- diga: stage 2 trains the generation expert with flow + alignment loss (on) or with the flow
  loss alone for the same steps (off), so the comparison isolates the alignment term.
Stage-1 runs are shared by variants with the same (smsa, gduf) switches. Detection is
measured on every subset's val split (train on one subset, cross-generator mean); generation
by KID on Inception features against val real crops. Each run is an ordinary checkpoint
directory, reused when its config matches, so an interrupted ablation resumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from gendet.bench.ablations import AblationOptions, compare, interval, kid_claim, pick_recipe
from gendet.data.decode import decode_image
from gendet.data.layouts import list_subsets, read_samples, split_holdout
from gendet.data.sample import Sample
from gendet.evaluation.fidelity import FeatureExtractor, InceptionExtractor, compute_features, kid
from gendet.evaluation.protocol import evaluate
from gendet.models.checkpoint import CONFIG_FILE, load_checkpoint
from gendet.models.unigendet import UniGenDet
from gendet.models.unigendet.build import RECIPES, build_unigendet
from gendet.training.state import seed_everything
from gendet.training.unified import UnifiedConfig, train_unified

VARIANTS: dict[str, dict[str, bool]] = {
    "full": {"smsa": True, "gduf": True, "diga": True},
    "w/o SMSA": {"smsa": False, "gduf": True, "diga": True},
    "w/o GDUF": {"smsa": True, "gduf": False, "diga": True},
    "w/o DIGA": {"smsa": True, "gduf": True, "diga": False},
}


_NOT_IN_KEY = ("progress", "save_every_steps", "workers")


def _key_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a run's weights (not progress bars, checkpoint cadence, or AMP on a CPU)."""
    out = {k: v for k, v in cfg.items() if k not in _NOT_IN_KEY}
    if out.get("device") == "cpu":
        out.pop("amp", None)
    return out


def _run_or_reuse(out: Path, key: dict[str, Any], train: Callable[[], None]) -> tuple[UniGenDet, dict[str, Any]]:
    cfg_path = out / CONFIG_FILE
    if cfg_path.is_file():
        stored = json.loads(cfg_path.read_text()).get("ablation_key") or {}
        if {**stored, "config": _key_config(stored.get("config", {}))} == key:
            return load_checkpoint(out)
    train()
    return load_checkpoint(out)


def _stage1(root: Path, train: list[Sample], val: list[Sample], pp_align: str, smsa: bool, gduf: bool, seed: int,
            recipe: dict[str, Any], device: str, progress: bool, model_config: dict[str, Any]) -> dict[str, UniGenDet]:
    """Stage-1 models: {"detector": ..., "generator": ...} (the same model when gduf)."""
    base = UnifiedConfig(stage="gduf", steps=recipe["gduf_steps"], det_batch=recipe["det_batch"], lr=recipe["lr"],
                         seed=seed, device=device, progress=progress, save_every_steps=0)
    parts = {"joint": base} if gduf else {
        "detector": replace(base, train_generation=False),
        "generator": replace(base, train_detection=False),
    }
    models: dict[str, UniGenDet] = {}
    for part, cfg in parts.items():
        out = root / f"stage1-smsa{int(smsa)}-{part}" / f"seed{seed}"
        key = {"config": _key_config(asdict(cfg)), "smsa": smsa, "part": part, "model": model_config}

        def fit(cfg: UnifiedConfig = cfg, out: Path = out, key: dict[str, Any] = key) -> None:
            seed_everything(seed)
            model = build_unigendet({**model_config, "smsa": smsa}, train)
            train_unified(model, train, val, model.preprocess(pp_align), cfg, out,
                          extra_config={"ablation_key": key})

        models[part], _ = _run_or_reuse(out, key, fit)
    if gduf:
        return {"detector": models["joint"], "generator": models["joint"]}
    return models


def _stage2(root: Path, name: str, stage1: dict[str, UniGenDet], train: list[Sample], val: list[Sample],
            pp_align: str, smsa: bool, gduf: bool, diga: bool, seed: int, recipe: dict[str, Any], device: str,
            progress: bool) -> UniGenDet:
    cfg = UnifiedConfig(stage="diga", steps=recipe["diga_steps"], det_batch=recipe["det_batch"], lr=recipe["lr"],
                        w_align=0.5 if diga else 0.0, seed=seed, device=device, progress=progress,
                        save_every_steps=0, train_detection=False)
    out = root / f"stage2-smsa{int(smsa)}-gduf{int(gduf)}-diga{int(diga)}" / f"seed{seed}"
    # stage 1's recipe and model are part of the key: a retrained stage 1 invalidates stage 2
    key = {"config": _key_config(asdict(cfg)), "variant": name, "recipe": recipe,
           "model": dict(stage1["generator"].config)}

    def fit() -> None:
        student = stage1["generator"].frozen_copy()  # a trainable copy; the stage-1 model stays intact
        teacher = stage1["detector"].frozen_copy()
        train_unified(student, train, val, student.preprocess(pp_align), cfg, out, teacher=teacher,
                      extra_config={"ablation_key": key})

    model, _ = _run_or_reuse(out, key, fit)
    return model


def real_reference(root: Path, subset: str, n: int, size: int) -> torch.Tensor:
    """The first n val real crops of a subset as uint8 (n, 3, size, size): decoded, centre-cropped and
    resized to the generator's size, no format alignment (generated images are compared as generated)."""
    files = sorted((root / subset / "val" / "nature").iterdir())[:n]
    if len(files) < 4:
        raise ValueError(f"{root / subset / 'val' / 'nature'} has {len(files)} images; KID needs at least 4")
    arrs = [np.asarray(ImageOps.fit(decode_image(f), (size, size), Image.Resampling.BICUBIC)) for f in files]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _save_grid(images: torch.Tensor, path: Path) -> str:
    from torchvision.utils import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float() / 255.0, str(path), nrow=8, padding=2)
    return str(path)


def run_ablation(data_root: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), recipe_name: str = "ablation",
                 train_subset: str = "latent_flow", align: str = "jpeg", fidelity_n: int = 100, device: str = "cpu",
                 cache_dir: Path | None = None, progress: bool = True,
                 extractor: FeatureExtractor | None = None, model_config: dict[str, Any] | None = None,
                 recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and measure every variant for every seed; returns the ablation block of results.json.

    model_config: UniGenDet config overrides shared by all variants; recipe: steps/lr/batch instead of
    RECIPES[recipe_name] (both for small test runs)."""
    recipe = dict(recipe or RECIPES[recipe_name])
    model_config = dict(model_config or {})
    samples = read_samples(data_root, layout="genimage")
    subsets = list_subsets(samples)
    if train_subset not in subsets:
        raise ValueError(f"train subset {train_subset!r} not in the data ({', '.join(subsets)})")
    test = [s for s in samples if s.split == "val"]
    size = int(UniGenDet(**model_config).config["image_size"]) if model_config else 64
    real = real_reference(data_root, train_subset, fidelity_n, size)
    extractor = extractor or InceptionExtractor()
    real_feats = compute_features(real, extractor, cache_dir)
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    grids: dict[str, str] = {}
    for seed in seeds:
        pool = [s for s in samples if s.generator == train_subset and s.split == "train"]
        train, val = split_holdout(pool, 0.1, seed)
        for name, sw in VARIANTS.items():
            s1 = _stage1(out, train, val, align, sw["smsa"], sw["gduf"], seed, recipe, device, progress, model_config)
            final = _stage2(out, name, s1, train, val, align, sw["smsa"], sw["gduf"], sw["diga"], seed, recipe,
                            device, progress)
            detector = s1["detector"] if not sw["gduf"] else final
            cross, _ = evaluate(detector, test, detector.preprocess(align), 0.5, "fixed", batch_size=128,
                                device=device, seed=seed)
            per = cross.get("subsets", {})
            others = [g for g in per if g != train_subset]
            fake = final.generate(fidelity_n, seed=seed)
            if seed == seeds[0]:
                grids[name] = _save_grid(fake[:32], out / f"samples-{_slug(name)}-seed{seed}.png")
            k = kid(real_feats, compute_features(fake, extractor, cache_dir, use_cache=False), seed=seed)
            rows[name].append({
                "seed": seed, "acc_mean": float(np.mean([per[g]["acc"] for g in per])),
                "auc_mean": float(np.mean([per[g]["auc"] for g in per])),
                "acc_unseen": float(np.mean([per[g]["acc"] for g in others])) if others else None,
                "auc_unseen": float(np.mean([per[g]["auc"] for g in others])) if others else None,
                "per_subset": {g: {"acc": per[g]["acc"], "auc": per[g]["auc"]} for g in per},
                "kid": k["kid"], "kid_std": k["kid_std"],
            })
    table = {name: {m: interval([r[m] for r in rs]) for m in ("acc_mean", "auc_mean", "acc_unseen", "auc_unseen",
                                                              "kid")}
             for name, rs in rows.items()}
    has_text = any(s.explanation for s in samples)
    return {"variants": VARIANTS, "recipe": {"name": recipe_name, **recipe}, "model_config": model_config,
            "text_term": "on" if has_text else "absent: the data have no explanation texts, so GDUF's loss is "
                                               "0.2 CE_cls + 1.0 MSE_flow",
            "train_subset": train_subset, "sample_grids": grids,
            "seeds": list(seeds), "fidelity_n": fidelity_n, "runs": rows, "table": table,
            "claims": _claims(table)}


def _claims(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The paper's claims, scaled down, checked on the means over seeds (reported whether or not they hold)."""
    out = {"SMSA improves cross-generator detection (AUC) over vision-only": compare(table, "full", "w/o SMSA",
                                                                                      "auc_mean"),
           "GDUF's joint detector beats the separately trained one (AUC)": compare(table, "full", "w/o GDUF",
                                                                                   "auc_mean")}
    out["DIGA lowers KID by >= 10% relative vs GDUF alone"] = kid_claim(table, "full", "w/o DIGA")
    return out


def run_from_options(data_root: Path, out: Path, options: AblationOptions) -> dict[str, Any]:
    """`gendet bench --ablation unigendet`: the options shared by every study, mapped to run_ablation."""
    recipe = pick_recipe(options, RECIPES, "ablation", "unigendet")
    return run_ablation(data_root, out, options.seeds, recipe, options.train_subset, options.align,
                        device=options.device, cache_dir=options.cache_dir, progress=options.progress)
