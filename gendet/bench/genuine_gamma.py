"""GAMMA's ablation on the genuine preset (`gendet bench --preset genuine --ablation gamma`).

Model: `gamma_lite` (frozen EfficientNet-Lite2 region tokens; mask + source heads; reverse
cross-attention). Manipulated data: gendet.bench.genuine_manipulated, one image per real photo
(train photos -> training set, val photos -> the pixel-level test set). Variants per seed:
"full" (manipulated data + segmentation heads + RCA), "w/o seg heads", "w/o RCA", "w/o manipulated
data", and the probe baseline. Measured:
- leave-one-group-out AUC on the genuine groups (manipulated training images are added to every cell);
- from the all-groups cell: AUC of the `edited` group (real photos edited by real generators, no masks)
  and of the manipulated val images, each against the real val photos (image level);
- region level on the manipulated val images: AUC and IoU (at 0.5) of the mask head on the grid x grid
  regions of each test crop (a region is manipulated when >= half its pixels are; regions with some but
  fewer manipulated pixels are left out).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gendet.bench.genuine_cells import compute_table, make_views
from gendet.bench.genuine_manipulated import build_genuine_manipulated
from gendet.bench.genuine_study import GenuineSplit, GenuineStudy, auc, logo, rows
from gendet.bench.study import compare, run_study
from gendet.data.manipulations.codes import SOURCE_NAMES, decode_source_map
from gendet.data.preprocess import Preprocess, apply_plan, plan_crop_grid
from gendet.data.sample import Sample
from gendet.evaluation.feature_cache import FeatureCache, model_key, sample_digests
from gendet.models import create_detector
from gendet.models.gamma.pretrained import GammaLite, label_targets

VARIANTS: dict[str, dict[str, bool]] = {
    "full": {"manipulated": True, "seg_heads": True, "rca": True},
    "w/o seg heads": {"manipulated": True, "seg_heads": False, "rca": True},
    "w/o RCA": {"manipulated": True, "seg_heads": True, "rca": False},
    "w/o manipulated data": {"manipulated": False, "seg_heads": True, "rca": True},
}
RECIPES: dict[str, dict[str, Any]] = {
    "genuine": {"config": {}},
    "smoke": {"config": {"steps": 4}},  # checks the pipeline only
}


def region_sources(samples: Sequence[Sample], pp: Preprocess, grid: int) -> list[np.ndarray]:
    """Per sample, (crops, grid*grid, 3): each region's pixel shares by source, for the test view's crops."""
    out = []
    for s in samples:
        mask = Image.open(s.mask)
        maps = [decode_source_map(apply_plan(mask, plan, mask=True)) for plan in plan_crop_grid(mask.size, pp)]
        crops = []
        for m in maps:
            cells = np.array_split(np.arange(m.shape[0]), grid)
            cols = np.array_split(np.arange(m.shape[1]), grid)
            crops.append([[float((m[np.ix_(r, c)] == k).mean()) for k in range(len(SOURCE_NAMES))]
                          for r in cells for c in cols])
        out.append(np.asarray(crops, dtype=np.float32))
    return out


def _region_scores(model: GammaLite, feats: list[np.ndarray], sources: list[np.ndarray]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    pred = np.concatenate([model.region_mask(f).reshape(len(f), -1) for f in feats]).ravel()
    manip = 1.0 - np.concatenate([s[..., 0] for s in sources]).ravel()
    keep = (manip >= 0.5) | (manip == 0.0)
    y, p = (manip[keep] >= 0.5).astype(int), pred[keep]
    if len(set(y.tolist())) < 2:
        return {"region_auc": None, "region_iou": None, "n_regions": int(keep.sum())}
    hit = p >= 0.5
    iou = float((hit & (y == 1)).sum() / max(1, (hit | (y == 1)).sum()))
    return {"region_auc": float(roc_auc_score(y, p)), "region_iou": iou, "n_regions": int(keep.sum()),
            "n_manipulated_regions": int(y.sum())}


class GammaStudy(GenuineStudy):
    name, model, title = "gamma", "gamma_lite", "GAMMA ablation on the genuine preset"
    metrics = ("logo_mean_auc", "logo_min_auc", "edited_auc", "manipulated_val_auc", "region_auc", "region_iou")
    recipes = RECIPES

    def prepare(self) -> None:
        split, cache = self.split, self.cache
        self.cfg = {**self.recipe["config"], **self.model_config}
        photos = {sp: [s for s in split.samples if s.label == 0 and (s.split == "train") == (sp == "train")]
                  for sp in ("train", "val")}
        self.manip = {sp: build_genuine_manipulated(photos[sp], cache, sp, seed=0, progress=self.progress)
                      for sp in photos}
        self.detector = create_detector("gamma_lite", **self.cfg)
        pp = self.detector.preprocess(align=self.align)
        grid = int(self.detector.config["grid"])
        sources = {sp: region_sources(self.manip[sp], pp, grid) for sp in self.manip}
        every = [*self.manip["train"], *self.manip["val"]]
        mtable, merrors, _ = compute_table(self.detector, every, sample_digests(every),
                                           [(make_views(self.detector, self.align, 0, 1, ())["grid"],
                                             list(range(len(every))))],
                                           FeatureCache(cache, model_key(self.detector)), 0, self.device,
                                           self.progress)
        self.errors.update(merrors)
        n_tr = len(self.manip["train"])
        have = {"train": [i for i in range(n_tr) if mtable.feats["grid"][i] is not None],
                "val": [i for i in range(n_tr, len(every)) if mtable.feats["grid"][i] is not None]}
        self.man_x = np.concatenate([mtable.feats["grid"][i] for i in have["train"]])
        self.man_src = np.concatenate([sources["train"][i] for i in have["train"]])
        self.val_feats = [mtable.feats["grid"][i] for i in have["val"]]
        self.val_src = [sources["val"][i - n_tr] for i in have["val"]]

    def variant_names(self) -> list[str]:
        return list(VARIANTS)

    def feature_model(self, seed: int) -> GammaLite:
        return self.detector

    def measure(self, seed: int, table: Any, first: bool) -> dict[str, dict[str, Any]]:
        split, man_x, man_src = self.split, self.man_x, self.man_src
        out: dict[str, dict[str, Any]] = {}
        for name, sw in VARIANTS.items():
            t = time.monotonic()
            head = create_detector("gamma_lite", **{**self.cfg, "seg_heads": sw["seg_heads"], "rca": sw["rca"]})

            def fit(x: np.ndarray, y: np.ndarray, _g: str, head: GammaLite = head,
                    use: bool = sw["manipulated"]) -> dict[str, Any]:
                src = label_targets(y, head.n_tokens)
                if use:
                    x, y = np.concatenate([x, man_x]), np.concatenate([y, np.ones(len(man_x), dtype=int)])
                    src = np.concatenate([src, man_src])
                head.fit_head(x, y, seed=seed, region_sources=src)
                return head.head_state()

            def score(state: dict[str, Any], feats: np.ndarray, head: GammaLite = head) -> np.ndarray:
                head.load_head_state(state)
                return head.head_logits(feats)

            res = logo(split, table, fit, score, f"{name} seed {seed}", self.progress)
            x_all, y_all = rows(table, split, split.train_idx)
            score_all = fit(x_all, y_all, "")
            del x_all, y_all  # ~0.6 GB of training rows: not held while the next variant builds its own
            res.update(_image_level(split, table, head, score_all, self.val_feats, score))
            res.update(_region_scores(head, self.val_feats, self.val_src))
            out[name] = res
            self.timed(f"{name}_seed{seed}_s", t)
        return out

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return _claims(table)

    def summary(self) -> dict[str, Any]:
        manipulated = {sp: {"n": len(v), "kinds": {k: sum(1 for s in v if s.extra["kind"] == k)
                                                   for k in sorted({s.extra["kind"] for s in v})},
                            "mean_area": float(np.mean([s.extra["area"] for s in v])) if v else None}
                       for sp, v in self.manip.items()}
        return {"variants": VARIANTS, "model_config": self.detector.config, "manipulated": manipulated}


def run_genuine_gamma(data: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), **options: Any) -> dict[str, Any]:
    """The study over `seeds`; options as for GenuineStudy.open."""
    return run_study(GammaStudy.open(data, out, **options), seeds)


def _image_level(split: GenuineSplit, table: Any, head: GammaLite, state: dict[str, Any], val_feats: list[np.ndarray],
                 score: Any) -> dict[str, Any]:
    """The all-groups head on the edited group and on the manipulated val images, each vs the real val photos."""
    real = [i for i in split.real_val if table.feats["grid"][i] is not None]
    real_logits = score(state, np.stack([table.feats["grid"][i] for i in real]))
    out: dict[str, Any] = {}
    edited = [i for i in split.by_group.get("edited", []) if table.feats["grid"][i] is not None]
    if edited:
        logits = np.concatenate([score(state, np.stack([table.feats["grid"][i] for i in edited])), real_logits])
        out["edited_auc"] = auc(split, edited + real, logits)
    if val_feats:
        from sklearn.metrics import roc_auc_score

        man = score(state, np.stack(val_feats))
        y = np.r_[np.ones(len(man)), np.zeros(len(real_logits))]
        out["manipulated_val_auc"] = float(roc_auc_score(y, np.r_[man, real_logits]))
    return out


def _claims(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {
        "segmentation heads improve leave-one-group-out AUC": compare(table, "full", "w/o seg heads", "logo_mean_auc"),
        "reverse cross-attention improves leave-one-group-out AUC": compare(table, "full", "w/o RCA", "logo_mean_auc"),
        "manipulated training data improve leave-one-group-out AUC": compare(table, "full", "w/o manipulated data",
                                                                             "logo_mean_auc"),
        "manipulated training data improve the edited group's AUC": compare(table, "full", "w/o manipulated data",
                                                                            "edited_auc"),
        "GAMMA (full) >= the probe baseline (AUC)": compare(table, "full", "probe (baseline)", "logo_mean_auc"),
    }
