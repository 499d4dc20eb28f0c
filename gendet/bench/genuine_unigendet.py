"""UniGenDet's ablation on the genuine preset (`gendet bench --preset genuine --ablation unigendet`).

Model: `unigendet_lite` (frozen EfficientNet-Lite2 region tokens + clean latents of an autoencoder
trained on the real training photos; one mixture-of-transformers). Per seed:
- detection, leave-one-group-out on cached features, for "full" (SMSA + GDUF), "w/o SMSA" (vision
  tokens only, GDUF) and "w/o GDUF" (SMSA, detection loss alone); "w/o DIGA" detects with full's
  stage-1 model (DIGA trains only the generation side), so its detection row is full's;
- generation: the stage-1 model of the all-groups cell (w/o GDUF: a generator trained on the flow
  loss alone, same steps), then stage 2 for the same steps: DIGA (flow + alignment to the frozen
  stage-1 detector's vision states) for full / w/o SMSA / w/o GDUF, flow loss alone for w/o DIGA;
  KID (Inception) of `fidelity_n` samples against the real val photos (centre crop, 64 px);
- the probe baseline on the same views and cells.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from gendet.bench.genuine_autoencoder import fit_genuine_autoencoder, training_photos
from gendet.bench.genuine_study import GenuineSplit, GenuineStudy, logo, rows
from gendet.bench.study import compare, kid_claim, run_study, save_sample_grid
from gendet.data.decode import DecodeError, decode_image
from gendet.evaluation.fidelity import FeatureExtractor, InceptionExtractor, compute_features, kid
from gendet.models import create_detector
from gendet.models.unigendet.pretrained import LATENT_SIZE, UniGenDetLite

VARIANTS: dict[str, dict[str, bool]] = {
    "full": {"smsa": True, "gduf": True, "diga": True},
    "w/o SMSA": {"smsa": False, "gduf": True, "diga": True},
    "w/o GDUF": {"smsa": True, "gduf": False, "diga": True},
    "w/o DIGA": {"smsa": True, "gduf": True, "diga": False},
}
RECIPES: dict[str, dict[str, Any]] = {
    "genuine": {"steps": 300, "diga_steps": 300, "fidelity_n": 200, "ae_steps": 800},
    "smoke": {"steps": 6, "diga_steps": 4, "fidelity_n": 8, "ae_steps": 4},  # checks the pipeline only
}


def real_val_images(split: GenuineSplit, n: int) -> torch.Tensor:
    """The first n real val photos (manifest order) as uint8 (n, 3, 64, 64): centre crop, resized (the
    generator's 64 px view of a photo); decoded as they are, as generated samples are compared as generated."""
    out = []
    for i in split.real_val[:n]:
        try:
            img = decode_image(split.samples[i].path)
        except DecodeError:
            continue
        out.append(np.asarray(ImageOps.fit(img, (LATENT_SIZE, LATENT_SIZE), Image.Resampling.BICUBIC)))
    if len(out) < 4:
        raise ValueError("KID needs at least 4 decodable real val photos")
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _model(ae: Any, config: dict[str, Any]) -> UniGenDetLite:
    m = create_detector("unigendet_lite", **config)
    m.adopt_autoencoder(ae.ae, ae.latent_mean, ae.latent_std)
    return m


class UniGenDetStudy(GenuineStudy):
    name, model, title = "unigendet", "unigendet_lite", "UniGenDet ablation on the genuine preset"
    metrics = ("logo_mean_auc", "logo_min_auc", "kid")
    recipes = RECIPES

    def __init__(self, *args: Any, extractor: FeatureExtractor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cfg = {**self.model_config, "steps": self.recipe["steps"], "diga_steps": self.recipe["diga_steps"]}
        self.extractor = extractor

    def prepare(self) -> None:
        photos = training_photos(self.split.real_train())
        self.ae = fit_genuine_autoencoder(photos, self.cache, seed=0, steps=self.recipe["ae_steps"],
                                          progress=self.progress)
        self.extractor = self.extractor or InceptionExtractor()
        self.real_feats = compute_features(real_val_images(self.split, self.recipe["fidelity_n"]), self.extractor,
                                           self.cache)

    def variant_names(self) -> list[str]:
        return list(VARIANTS)

    def feature_model(self, seed: int) -> UniGenDetLite:
        return _model(self.ae, self.cfg)

    def measure(self, seed: int, table: Any, first: bool) -> dict[str, dict[str, Any]]:
        split, cfg = self.split, self.cfg
        out: dict[str, dict[str, Any]] = {}
        x_all, y_all = rows(table, split, split.train_idx)
        stage1: dict[tuple[bool, bool], UniGenDetLite] = {}
        for smsa, gduf in ((True, True), (False, True), (True, False)):
            t = time.monotonic()
            model = _model(self.ae, {**cfg, "smsa": smsa, "gduf": gduf})

            def fit(x: np.ndarray, y: np.ndarray, _g: str, model: UniGenDetLite = model) -> dict[str, Any]:
                model.fit_head(x, y, seed=seed)
                return model.head_state()

            def score(state: dict[str, Any], feats: np.ndarray, model: UniGenDetLite = model) -> np.ndarray:
                model.load_head_state(state)
                return model.head_logits(feats)

            det = logo(split, table, fit, score, f"smsa={int(smsa)} gduf={int(gduf)} seed {seed}", self.progress)
            model.fit_head(x_all, y_all, seed=seed)  # the all-groups cell: stage 1 of the generator
            stage1[(smsa, gduf)] = model
            self.timed(f"stage1_smsa{int(smsa)}_gduf{int(gduf)}_seed{seed}_s", t)
            for name, sw in VARIANTS.items():
                if (sw["smsa"], sw["gduf"]) == (smsa, gduf):
                    out[name] = dict(det)
        vis, z = stage1[(True, True)].split(torch.from_numpy(x_all[y_all == 0]))
        for name, sw in VARIANTS.items():
            t = time.monotonic()
            teacher = stage1[(sw["smsa"], sw["gduf"])]
            if sw["gduf"]:
                student = teacher.frozen_copy()
            else:  # the separately trained generator: from scratch, flow loss alone, GDUF's steps and rows
                torch.manual_seed(seed)
                student = _model(self.ae, {**cfg, "gduf": False})
                student.fit_generator(z, seed=seed, steps=int(cfg["steps"]), batch=student.generation_batch())
            student.fit_generator(z, seed=seed + 1000, teacher=teacher if sw["diga"] else None, real_vision=vis)
            fake = student.generate(self.recipe["fidelity_n"], seed=seed)
            k = kid(self.real_feats, compute_features(fake, self.extractor, self.cache, use_cache=False), seed=seed)
            out[name].update(kid=k["kid"], kid_std=k["kid_std"])
            if first:
                grid = self.out / f"samples-{name.replace('/', '').replace(' ', '_')}.png"
                out[name]["samples"] = save_sample_grid(fake[:32], grid)
            self.timed(f"stage2_{name}_seed{seed}_s", t)
        return out

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return _claims(table)

    def summary(self) -> dict[str, Any]:
        return {"variants": VARIANTS, "model_config": self.cfg, "autoencoder": self.ae.info}


def run_genuine_unigendet(data: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), **options: Any) -> dict[str, Any]:
    """The study over `seeds`; options as for GenuineStudy.open (and extractor: KID's feature extractor)."""
    return run_study(UniGenDetStudy.open(data, out, **options), seeds)



def _claims(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {
        "SMSA improves leave-one-group-out AUC over vision-only": compare(table, "full", "w/o SMSA", "logo_mean_auc"),
        "GDUF's joint detector beats the detector trained alone (AUC)": compare(table, "full", "w/o GDUF",
                                                                                "logo_mean_auc"),
        "UniGenDet (full) >= the probe baseline (AUC)": compare(table, "full", "probe (baseline)", "logo_mean_auc"),
        "GDUF's joint generator beats the generator trained alone (KID)": compare(table, "full", "w/o GDUF", "kid",
                                                                                   higher_is_better=False),
    }
    out["DIGA lowers KID by >= 10% relative vs GDUF alone"] = kid_claim(table, "full", "w/o DIGA")
    return out
