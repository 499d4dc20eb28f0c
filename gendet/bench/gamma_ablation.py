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
from matplotlib.figure import Figure

from gendet.bench.manipulated import ManipulationConfig, build_manipulated_subset, manipulated_samples
from gendet.bench.study import AblationOptions, compare, run_study, slug
from gendet.bench.tiny_study import TinyStudy, cross_generator_row, finished
from gendet.data.decode import decode_image
from gendet.data.layouts import list_subsets
from gendet.data.manipulations.codes import SOURCE_REAL
from gendet.data.sample import Sample
from gendet.evaluation.pixel_metrics import pixel_report, predict_pixels, sample_kind
from gendet.evaluation.protocol import degradation_mean, degradation_table, evaluate
from gendet.generation.inpaint import INPAINTERS
from gendet.io import atomic_write_text
from gendet.models import create_detector
from gendet.models.checkpoint import WEIGHTS_FILE, load_checkpoint
from gendet.models.gamma import CPU_CONFIG
from gendet.report import plots
from gendet.report.builder import ReportBuilder
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


def manipulation_config(train_subset: str) -> ManipulationConfig:
    """Inpaint the training split only with the training subset's generator, so no other generator's
    traces reach training; val has every inpainter (an unseen one included)."""
    train_inpaint = (f"inpaint_{train_subset}",) if train_subset in INPAINTERS else ()
    return ManipulationConfig(kinds_train=(*train_inpaint, "copy_move", "splice"),
                              kinds_val=(*(f"inpaint_{g}" for g in INPAINTERS), "copy_move", "splice"))


def _train_variant(run_dir: Path, key: dict[str, Any], model_config: dict[str, Any], train_set: list[Sample],
                   val_set: list[Sample], cfg: TrainConfig, align: str) -> None:
    if finished(run_dir, key):
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
    row: dict[str, Any] = {
        "key": key, "seed": seed, **cross_generator_row(per, train_subset, apart=("manipulated",)),
        "manip_acc": per.get("manipulated", {}).get("acc"), "manip_auc": per.get("manipulated", {}).get("auc"),
        "degr_acc": degradation_mean(degr, "acc"),
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


class GammaTinyStudy(TinyStudy):
    name, title = "gamma", "GAMMA ablation"
    metrics = METRICS
    recipes, default_recipe = RECIPES, "ablation"
    protocol = ("Variants differ only by their switches: seg_heads (the mask and source heads and their losses), rca "
                "(classification tokens attend to the segmentation features), manipulated (the manipulated subset's "
                "train split in the training pool; the same number of optimizer steps either way). Image level: "
                "GenImage Task 1 on every subset's val split (unseen = the generator subsets other than the training "
                "one; the manipulated subset is reported apart) and Task 2 (mean accuracy over the six degradations "
                "of the training subset's val split), threshold 0.5. Pixel level: F1 / IoU at 0.5 per image and "
                "pooled pixel-AUC on the partly manipulated val images; real FP rate = share of real pixels called "
                "manipulated. Mean ± 95% t-interval over seeds.")

    def __init__(self, *args: Any, manipulated_root: Path | None = None,
                 variants: dict[str, dict[str, bool]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_config = {**CPU_CONFIG, **self.model_config}
        self.variants = variants or VARIANTS
        self.manip_root = Path(manipulated_root) if manipulated_root else self.out / "manipulated-data"
        self.steps: dict[str, int] = {}
        self.first_seed = 0  # the seed whose runs save sample masks

    @classmethod
    def from_options(cls, data: Path, out: Path, options: AblationOptions) -> GammaTinyStudy:
        """The manipulated subset is cached next to the other benchmark data."""
        cache = Path(options.cache_dir) if options.cache_dir else out
        return cls(data, out, options.recipe, options.train_subset, options.align, options.device,
                   progress=options.progress, manipulated_root=cache / f"{Path(data).name}-manipulated")

    def prepare(self) -> None:
        from gendet.bench.tiny_genimage import read_manifest

        base_info = read_manifest(self.data_root) or {}
        base = self.load_samples()
        self.manip_info = build_manipulated_subset(self.data_root, self.manip_root,
                                                   manipulation_config(self.train_subset), self.progress)
        manip = manipulated_samples(self.manip_root)
        self.test = [s for s in base + manip if s.split == "val"]
        rng = np.random.default_rng(0)
        generated = []
        for g in list_subsets(base):
            pool = [s for s in base if s.generator == g and s.split == "val" and s.label == 1]
            generated += [pool[i] for i in sorted(rng.permutation(len(pool))[:GENERATED_PER_SUBSET])]
        self.pixel_set = [s for s in manip if s.split == "val"] + generated
        self.shown = _shown_samples([s for s in manip if s.split == "val"])
        self.data_key = {"base": base_info.get("key"), "manipulated": self.manip_info["key"],
                         "train_subset": self.train_subset}
        self.pools = {True: [s for s in base + manip if s.split == "train"
                             and s.generator in (self.train_subset, "manipulated")],
                      False: [s for s in base if s.split == "train" and s.generator == self.train_subset]}

    def variant_names(self) -> list[str]:
        return list(self.variants)

    def run_seed(self, seed: int, first: bool) -> dict[str, dict[str, Any]]:
        r = self.recipe
        if first:
            self.first_seed = seed
        splits = {m: self.holdout(pool, seed) for m, pool in self.pools.items()}
        full_steps = r["epochs"] * math.ceil(len(splits[True][0]) / r["batch_size"])
        rows: dict[str, dict[str, Any]] = {}
        for name, sw in self.variants.items():
            tr, va = splits[sw["manipulated"]]
            epochs = max(1, round(full_steps / math.ceil(len(tr) / r["batch_size"])))
            cfg = TrainConfig(**{**r, "epochs": epochs}, seed=seed, device=self.device, patience=0,
                              save_every_steps=0, progress=self.progress)
            self.steps[name] = cfg.max_steps or epochs * math.ceil(len(tr) / r["batch_size"])
            mc = {**self.model_config, "seg_heads": sw["seg_heads"], "rca": sw["rca"]}
            key = {"variant": sw, "model": mc, "train": {k: v for k, v in asdict(cfg).items() if k != "progress"},
                   "data": self.data_key, "align": self.align}
            run_dir = self.out / "runs" / slug(name) / f"seed{seed}"
            _train_variant(run_dir, key, mc, tr, va, cfg, self.align)
            row = _evaluate_run(run_dir, key, self.test, self.pixel_set, self.shown if first else [],
                                self.train_subset, self.device, seed)
            rows[name] = {k: v for k, v in row.items() if k not in ("key", "seed")}
        return rows

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """The paper's claims, scaled down, checked on the means over seeds (reported whether or not they hold)."""
        return {text: compare(table, "full", ablated, metric) for text, ablated, metric in CLAIMS
                if "full" in self.variants and ablated in self.variants}

    def summary(self) -> dict[str, Any]:
        return {"variants": self.variants, "steps": self.steps, "model_config": self.model_config,
                "train_subset": self.train_subset, "manipulated_root": str(self.manip_root),
                "manipulation": self.manip_info["config"], "mask_encoding": self.manip_info["mask_encoding"],
                "sample_masks": self._sample_masks()}

    def _sample_masks(self) -> dict[str, Any]:
        """The shown images and where each variant with segmentation heads saved its masks of them."""
        return {"paths": [str(s.path) for s in self.shown], "masks": [str(s.mask) for s in self.shown],
                "kinds": [sample_kind(s) for s in self.shown],
                "runs": {n: str(self.out / "runs" / slug(n) / f"seed{self.first_seed}" / "sample_masks.npz")
                         for n, sw in self.variants.items() if sw["seg_heads"]}}

    @classmethod
    def report_sections(cls, rb: ReportBuilder, ab: dict[str, Any], out_dir: Path) -> None:
        mc = ab["model_config"]
        rb.add_key_values({"optimizer steps per variant": ", ".join(f"{v} {s}" for v, s in ab["steps"].items()),
                           "backbone": f"{mc['backbone']} widths {mc.get('widths')}, {mc['image_size']} px",
                           "manipulated data": ab["manipulated_root"], "mask encoding": ab.get("mask_encoding")})
        rb.add_heading("Pixel level, per manipulation kind")
        rb.add_table(per_kind_rows(ab), caption="Mean over seeds; F1/IoU undefined on images with nothing manipulated")
        fig = sample_masks_figure(ab)
        if fig is not None:
            rb.add_figure(fig, caption=f"Sample val images of each kind: image, true mask, and P(manipulated) of each "
                                       f"variant with segmentation heads (seed {ab['seeds'][0]})")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def per_kind_rows(ab: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (variant, kind): pixel metrics averaged over seeds."""
    rows = []
    for variant, runs in ab["runs"].items():
        kinds = [r["per_kind"] for r in runs if r.get("per_kind")]
        for kind in sorted({k for pk in kinds for k in pk}):
            cells = [pk[kind] for pk in kinds if kind in pk]
            rows.append({"variant": variant, "kind": kind, "images": cells[0]["n"],
                         **{m: _mean([c.get(m) for c in cells])
                            for m in ("f1", "iou", "pixel_auc", "source_acc", "fp_rate", "image_acc")}})
    return rows


def sample_masks_figure(ab: dict[str, Any]) -> bytes | None:
    """Rows: shown samples; columns: image, true mask, then each variant's P(manipulated) map."""
    sm = ab.get("sample_masks") or {}
    runs = {v: np.load(p) for v, p in sm.get("runs", {}).items() if Path(p).is_file()}
    if not runs or not sm.get("paths"):
        return None
    n, cols = len(sm["paths"]), 2 + len(runs)
    fig = Figure(figsize=(1.35 * cols, 1.35 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, cols, squeeze=False)
    truth = next(iter(runs.values()))["truth"]
    for i, path in enumerate(sm["paths"]):
        panels = [(np.asarray(decode_image(path)), None, "image"),
                  ((truth[i] != SOURCE_REAL).astype(float), "gray", "true mask")]
        panels += [(r["prob"][i].astype(float), "inferno", f"{v}") for v, r in runs.items()]
        for j, (img, cmap, title) in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
        axes[i][0].set_ylabel(sm["kinds"][i].replace("_", " "), fontsize=6)
    return plots.fig_to_png(fig)


def run_gamma_ablation(data_root: Path, out: Path, seeds: tuple[int, ...] = (0, 1, 2), recipe_name: str | None = None,
                       train_subset: str = "latent_flow", **options: Any) -> dict[str, Any]:
    """Train and measure every variant for every seed; returns the ablation block of results.json. Options as
    for GammaTinyStudy (manipulated_root, model_config, recipe, variants)."""
    return run_study(GammaTinyStudy(data_root, out, recipe_name, train_subset, **options), seeds)
