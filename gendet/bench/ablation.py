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

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from gendet.bench.study import compare, kid_claim, run_study, save_sample_grid, slug
from gendet.bench.tiny_study import TinyStudy, cross_generator_row, finished
from gendet.data.decode import decode_image
from gendet.data.sample import Sample
from gendet.evaluation.fidelity import FeatureExtractor, InceptionExtractor, compute_features, kid
from gendet.evaluation.protocol import evaluate
from gendet.models.checkpoint import load_checkpoint
from gendet.models.unigendet import UniGenDet
from gendet.models.unigendet.build import RECIPES, build_unigendet
from gendet.report import plots
from gendet.report.builder import ReportBuilder
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


def _stored_key(stored: dict[str, Any]) -> dict[str, Any]:
    return {**stored, "config": _key_config(stored.get("config", {}))}


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


class UniGenDetTinyStudy(TinyStudy):
    name, title = "unigendet", "UniGenDet ablation"
    metrics = ("auc_mean", "auc_unseen", "acc_mean", "acc_unseen", "kid")  # headline first
    recipes, default_recipe = RECIPES, "ablation"
    # measured without photo groups: the hold-out only feeds the training log (fixed steps, threshold 0.5)
    photo_groups = False
    protocol = ("Variants differ only by their switches: SMSA (latent tokens in detection), GDUF (one model trained "
                "jointly vs a detector and a generator trained separately, same steps), DIGA (stage 2 with the "
                "alignment loss vs the flow loss alone, same steps). Detection: accuracy (threshold 0.5) and AUC on "
                "every subset's val split, mean over subsets and over unseen subsets only. Generation: KID of the "
                "samples against val real crops (Inception features; lower is better). Mean ± 95% t-interval over "
                "seeds.")

    def __init__(self, *args: Any, fidelity_n: int = 100, extractor: FeatureExtractor | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fidelity_n, self.extractor = fidelity_n, extractor

    def prepare(self) -> None:
        self.samples = self.load_samples()
        self.test = [s for s in self.samples if s.split == "val"]
        size = int(UniGenDet(**self.model_config).config["image_size"]) if self.model_config else 64
        self.extractor = self.extractor or InceptionExtractor()
        self.real_feats = compute_features(real_reference(self.data_root, self.train_subset, self.fidelity_n, size),
                                           self.extractor, self.cache_dir)

    def variant_names(self) -> list[str]:
        return list(VARIANTS)

    def _stage1(self, train: list[Sample], val: list[Sample], smsa: bool, gduf: bool,
                seed: int) -> dict[str, UniGenDet]:
        """Stage-1 models: {"detector": ..., "generator": ...} (the same model when gduf)."""
        r = self.recipe
        base = UnifiedConfig(stage="gduf", steps=r["gduf_steps"], det_batch=r["det_batch"], lr=r["lr"], seed=seed,
                             device=self.device, progress=self.progress, save_every_steps=0)
        parts = {"joint": base} if gduf else {"detector": replace(base, train_generation=False),
                                              "generator": replace(base, train_detection=False)}
        models: dict[str, UniGenDet] = {}
        for part, cfg in parts.items():
            out = self.out / f"stage1-smsa{int(smsa)}-{part}" / f"seed{seed}"
            key = {"config": _key_config(asdict(cfg)), "smsa": smsa, "part": part, "model": self.model_config}
            if not finished(out, key, _stored_key):
                seed_everything(seed)
                model = build_unigendet({**self.model_config, "smsa": smsa}, train)
                train_unified(model, train, val, model.preprocess(self.align), cfg, out,
                              extra_config={"ablation_key": key})
            models[part] = load_checkpoint(out)[0]
        return {"detector": models["joint"], "generator": models["joint"]} if gduf else models

    def _stage2(self, name: str, stage1: dict[str, UniGenDet], train: list[Sample], val: list[Sample],
                sw: dict[str, bool], seed: int) -> UniGenDet:
        r = self.recipe
        cfg = UnifiedConfig(stage="diga", steps=r["diga_steps"], det_batch=r["det_batch"], lr=r["lr"],
                            w_align=0.5 if sw["diga"] else 0.0, seed=seed, device=self.device, progress=self.progress,
                            save_every_steps=0, train_detection=False)
        out = self.out / f"stage2-smsa{int(sw['smsa'])}-gduf{int(sw['gduf'])}-diga{int(sw['diga'])}" / f"seed{seed}"
        # stage 1's recipe and model are part of the key: a retrained stage 1 invalidates stage 2
        key = {"config": _key_config(asdict(cfg)), "variant": name, "recipe": r,
               "model": dict(stage1["generator"].config)}
        if not finished(out, key, _stored_key):
            student = stage1["generator"].frozen_copy()  # a trainable copy; the stage-1 model stays intact
            teacher = stage1["detector"].frozen_copy()
            train_unified(student, train, val, student.preprocess(self.align), cfg, out, teacher=teacher,
                          extra_config={"ablation_key": key})
        return load_checkpoint(out)[0]

    def run_seed(self, seed: int, first: bool) -> dict[str, dict[str, Any]]:
        pool = [s for s in self.samples if s.generator == self.train_subset and s.split == "train"]
        train, val = self.holdout(pool, seed)
        rows: dict[str, dict[str, Any]] = {}
        for name, sw in VARIANTS.items():
            s1 = self._stage1(train, val, sw["smsa"], sw["gduf"], seed)
            final = self._stage2(name, s1, train, val, sw, seed)
            detector = s1["detector"] if not sw["gduf"] else final
            cross, _ = evaluate(detector, self.test, detector.preprocess(self.align), 0.5, "fixed", batch_size=128,
                                device=self.device, seed=seed)
            fake = final.generate(self.fidelity_n, seed=seed)
            k = kid(self.real_feats, compute_features(fake, self.extractor, self.cache_dir, use_cache=False),
                    seed=seed)
            rows[name] = {**cross_generator_row(cross.get("subsets", {}), self.train_subset), "kid": k["kid"],
                          "kid_std": k["kid_std"]}
            if first:
                rows[name]["samples"] = save_sample_grid(fake[:32], self.out / f"samples-{slug(name)}-seed{seed}.png")
        return rows

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """The paper's claims, scaled down, checked on the means over seeds (reported whether or not they hold)."""
        return {"SMSA improves cross-generator detection (AUC) over vision-only": compare(table, "full", "w/o SMSA",
                                                                                          "auc_mean"),
                "GDUF's joint detector beats the separately trained one (AUC)": compare(table, "full", "w/o GDUF",
                                                                                       "auc_mean"),
                "DIGA lowers KID by >= 10% relative vs GDUF alone": kid_claim(table, "full", "w/o DIGA")}

    def summary(self) -> dict[str, Any]:
        has_text = any(s.explanation for s in self.samples)
        return {"variants": VARIANTS, "model_config": self.model_config, "train_subset": self.train_subset,
                "fidelity_n": self.fidelity_n,
                "text_term": "on" if has_text else "absent: the data have no explanation texts, so GDUF's loss is "
                                                   "0.2 CE_cls + 1.0 MSE_flow"}

    @classmethod
    def report_sections(cls, rb: ReportBuilder, ab: dict[str, Any], out_dir: Path) -> None:
        rb.add_note(f"GDUF text term: {ab['text_term']}.")
        kids = {v: t["kid"]["mean"] for v, t in ab["table"].items()}
        top = max([k for k in kids.values() if k is not None] or [1.0])
        rb.add_figure(plots.grouped_bars(kids, title="Generation", ylabel="KID", ylim=(0.0, 1.2 * top)),
                      caption=f"KID of {ab['fidelity_n']} samples per variant (lower is better)")


def run_ablation(data_root: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), recipe_name: str | None = None,
                 train_subset: str = "latent_flow", **options: Any) -> dict[str, Any]:
    """Train and measure every variant for every seed; returns the ablation block of results.json. Options as
    for UniGenDetTinyStudy (model_config / recipe: small test models and schedules)."""
    return run_study(UniGenDetTinyStudy(data_root, out, recipe_name, train_subset, **options), seeds)
