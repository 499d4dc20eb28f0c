"""HRR's ablation on the genuine preset (`gendet bench --preset genuine --ablation hrr`).

Model: `hrr_lite` (reconstruction residuals of the genuine autoencoder at scales 1, 1/2, 1/4, read
by frozen EfficientNet-Lite2). One cached feature table per seed serves every variant: DIRE is the
scale-1 columns of the same features (exactly what `dire_lite` computes). Variants, each
leave-one-group-out per seed:
- "dire": scale 1, linear head (BCE);
- "hrr w/o refinement": three scales, linear head (isolates multi-scale retrospection);
- "hrr": three scales + the correntropy sparse additive refinement (Welsch loss);
- "hrr (squared loss)": the same refinement with the squared loss (isolates the loss);
- both refinements again with 20 % of the training rows' labels flipped (seeded per seed and cell; test
  labels clean; the recipe's `label_noise` list);
- the probe baseline (image features, no reconstruction) on the same views and cells.
Also measured: the reconstructor's error (mean |x - AE(x)| on the test view's crops, scale 1) on real
vs generated val images, the question DIRE's premise rests on.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gendet.bench.genuine_autoencoder import fit_genuine_autoencoder, training_photos
from gendet.bench.genuine_study import GenuineSplit, GenuineStudy, logo
from gendet.bench.study import compare, run_study
from gendet.data.decode import DecodeError
from gendet.data.preprocess import ImageTransform, decode_for_model
from gendet.models import create_detector
from gendet.models.hrr.pretrained import HRRLite

BASE_VARIANTS: dict[str, dict[str, Any]] = {
    "dire": {"scales": 1, "refine": "none"},
    "hrr w/o refinement": {"scales": 3, "refine": "none"},
    "hrr": {"scales": 3, "refine": "afr", "refine_loss": "welsch"},
    "hrr (squared loss)": {"scales": 3, "refine": "afr", "refine_loss": "squared"},
}
NOISY = ("hrr", "hrr (squared loss)")
RECIPES: dict[str, dict[str, Any]] = {
    # 20 % label noise only: each noise rate adds 48 refinement fits (~8 min on 2 cores)
    "genuine": {"label_noise": [0.2], "ae_steps": 800, "recon_n": 100, "config": {}},
    "smoke": {"label_noise": [0.2], "ae_steps": 4, "recon_n": 6, "config": {"steps": 4}},  # the pipeline only
}


def noisy_name(base: str, rate: float) -> str:
    return f"{base}, {round(rate * 100)}% label noise"


def flip_labels(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """A copy of y with round(rate * n) labels flipped, chosen by a seeded generator."""
    rng = np.random.default_rng(seed)
    out = y.copy()
    idx = rng.choice(len(y), round(rate * len(y)), replace=False)
    out[idx] = 1 - out[idx]
    return out


def reconstruction_error(model: HRRLite, split: GenuineSplit, n: int) -> dict[str, Any]:
    """Mean |x - AE(x)| (inputs in [-1, 1]) of the test view's crops at scale 1, first n real / generated val images."""
    tf = ImageTransform(model.preprocess())
    out: dict[str, Any] = {}
    for name, lab in (("real", 0), ("generated", 1)):
        idx = [i for i, s in enumerate(split.samples) if s.split != "train" and s.label == lab
               and s.generator != "edited"][:n]
        errs = []
        for i in idx:
            try:
                x = tf(decode_for_model(split.samples[i].path, tf.pp), np.random.default_rng(0))
            except DecodeError:
                continue
            x = x if x.ndim == 4 else x[None]
            with torch.no_grad():
                errs.append(float((x - model.autoencoder.reconstruct(x)).abs().mean()))
        out[name] = {"n": len(errs), "mean_abs_error": float(np.mean(errs)) if errs else None}
    return out


class HRRStudy(GenuineStudy):
    name, model, title = "hrr", "hrr_lite", "HRR ablation on the genuine preset"
    metrics = ("logo_mean_auc", "logo_min_auc", "n_kept")
    recipes = RECIPES

    def prepare(self) -> None:
        self.cfg = {**self.recipe["config"], **self.model_config}
        self.ae = fit_genuine_autoencoder(training_photos(self.split.real_train()), self.cache, seed=0,
                                          steps=self.recipe["ae_steps"], progress=self.progress)
        self.full = create_detector("hrr_lite", **self.cfg)
        self.full.adopt_autoencoder(self.ae.ae)
        self.recon = reconstruction_error(self.full, self.split, self.recipe["recon_n"])

    def variant_names(self) -> list[str]:
        return [*BASE_VARIANTS, *(noisy_name(v, r) for v in NOISY for r in self.recipe["label_noise"])]

    def feature_model(self, seed: int) -> HRRLite:
        return self.full

    def measure(self, seed: int, table: Any, first: bool) -> dict[str, dict[str, Any]]:
        dim = self.full.backbone.feature_dim
        jobs = [(name, v, 0.0) for name, v in BASE_VARIANTS.items()]
        jobs += [(noisy_name(v, r), BASE_VARIANTS[v], r) for v in NOISY for r in self.recipe["label_noise"]]
        out: dict[str, dict[str, Any]] = {}
        for name, v, rate in jobs:
            t = time.monotonic()
            cols = dim * int(v["scales"])
            head = create_detector("hrr_lite", **{**self.cfg, "scales": list(self.full.config["scales"])[:v["scales"]],
                                                  "refine": v["refine"],
                                                  "refine_loss": v.get("refine_loss", "welsch")})
            kept: list[int] = []

            def fit(x: np.ndarray, y: np.ndarray, g: str, head: HRRLite = head, cols: int = cols,
                    rate: float = rate, kept: list[int] = kept) -> dict[str, Any]:
                y = flip_labels(y, rate, seed * 100003 + zlib.crc32(g.encode())) if rate else y
                head.fit_head(x[:, :cols], y, seed=seed)
                if "n_kept" in head.fit_info:
                    kept.append(int(head.fit_info["n_kept"]))
                return head.head_state()

            def score(state: dict[str, Any], feats: np.ndarray, head: HRRLite = head,
                      cols: int = cols) -> np.ndarray:
                head.load_head_state(state)
                return head.head_logits(feats[..., :cols])

            res = logo(self.split, table, fit, score, f"{name} seed {seed}", self.progress)
            res["n_kept"] = float(np.mean(kept)) if kept else None
            out[name] = res
            self.timed(f"{name}_seed{seed}_s", t)
        return out

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return _claims(table, self.recipe["label_noise"])

    def summary(self) -> dict[str, Any]:
        return {"variants": BASE_VARIANTS, "model_config": self.full.config,
                "reconstructor": {"what": "KL autoencoder (latent_flow family, 4x down) trained on the real training "
                                          "photos (gendet.bench.genuine_autoencoder)", **self.ae.info,
                                  "val_reconstruction_error": self.recon}}


def run_genuine_hrr(data: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), **options: Any) -> dict[str, Any]:
    """The study over `seeds`; options as for GenuineStudy.open."""
    return run_study(HRRStudy.open(data, out, **options), seeds)


def _claims(table: dict[str, dict[str, dict[str, Any]]], noise: list[float]) -> dict[str, dict[str, Any]]:
    out = {
        "multi-scale retrospection beats single-scale DIRE (AUC)": compare(table, "hrr w/o refinement", "dire",
                                                                           "logo_mean_auc"),
        "feature refinement improves on the linear head (AUC)": compare(table, "hrr", "hrr w/o refinement",
                                                                        "logo_mean_auc"),
        "HRR beats DIRE (AUC)": compare(table, "hrr", "dire", "logo_mean_auc"),
        "HRR >= the probe baseline (AUC)": compare(table, "hrr", "probe (baseline)", "logo_mean_auc"),
    }
    for r in noise:
        out[f"correntropy beats the squared loss at {round(r * 100)}% label noise (AUC)"] = compare(
            table, noisy_name("hrr", r), noisy_name("hrr (squared loss)", r), "logo_mean_auc")
    return out
