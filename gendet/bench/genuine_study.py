"""What every ablation study on the genuine preset shares: the split, cached feature tables, leave-one-group-out.

`gendet bench --preset genuine --data MANIFEST --ablation NAME --seeds 0,1,2`. Same protocol as the
genuine benchmark (gendet.bench.genuine): the manifest's splits (by near-duplicate cluster),
the `edited` group never trained on, leave-one-group-out cells (train on every other group's
train split + the real train split; test on all of the held-out group's images vs the real val
split). Each cell trains on the cached features of the grid crops and of one seeded augmented
crop per training image (the benchmark's default recipe with one draw), and is scored on the grid
crops (mean logit). The metric is the AUC, which needs no threshold. Every study's table has the
probe baseline beside it, trained on the same views, cells and seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from gendet.bench.genuine import EXCLUDED_GROUPS, read_genuine
from gendet.bench.genuine_cells import FeatureTable, compute_table, make_views
from gendet.bench.study import AblationOptions, Study
from gendet.data.sample import Sample
from gendet.evaluation.feature_cache import FeatureCache, model_key, sample_digests
from gendet.evaluation.metrics import compute_metrics

TRAIN_VIEWS = ("grid", "full_0")
TEST_VIEW = "grid"


@dataclass
class GenuineSplit:
    samples: list[Sample]
    labels: np.ndarray
    digests: list[str]
    train_idx: list[int]  # train split, `edited` excluded
    real_val: list[int]
    groups: list[str]
    by_group: dict[str, list[int]]

    def logo_train(self, group: str) -> list[int]:
        return [i for i in self.train_idx if self.labels[i] == 0 or self.samples[i].generator != group]

    def logo_test(self, group: str) -> list[int]:
        return self.by_group[group] + self.real_val

    def real_train(self) -> list[Sample]:
        return [self.samples[i] for i in self.train_idx if self.labels[i] == 0]


def load_split(data: Path) -> GenuineSplit:
    samples = read_genuine(data)
    labels = np.array([int(s.label) for s in samples])
    train_idx = [i for i, s in enumerate(samples) if s.split == "train" and s.generator not in EXCLUDED_GROUPS]
    real_val = [i for i, s in enumerate(samples) if s.split != "train" and labels[i] == 0]
    groups = sorted({s.generator for s in samples if s.label == 1 and s.generator not in EXCLUDED_GROUPS})
    by_group = {g: [i for i, s in enumerate(samples) if s.generator == g] for g in [*groups, *EXCLUDED_GROUPS]}
    return GenuineSplit(samples, labels, sample_digests(samples), train_idx, real_val, groups, by_group)


def feature_table(detector: Any, split: GenuineSplit, cache_dir: Path, seed: int, align: str = "jpeg",
                  device: str = "cpu", workers: int = 0, progress: bool = True) -> tuple[FeatureTable, dict[str, str]]:
    """Cached features of the test view (every image) and of the seeded training view (training images)."""
    views = make_views(detector, align, seed, 1, ())
    every = list(range(len(split.samples)))
    jobs = [(views[TEST_VIEW], every), (views["full_0"], split.train_idx)]
    table, errors, _ = compute_table(detector, split.samples, split.digests, jobs,
                                     FeatureCache(cache_dir, model_key(detector)), workers, device, progress)
    return table, errors


def rows(table: FeatureTable, split: GenuineSplit, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Training rows (crops of the training views) of the usable indices."""
    return table.rows(TRAIN_VIEWS, table.usable((*TRAIN_VIEWS, TEST_VIEW), idx), split.labels)


def test_feats(table: FeatureTable, idx: Sequence[int]) -> tuple[list[int], np.ndarray]:
    keep = table.usable((TEST_VIEW,), idx)
    return keep, np.stack([table.feats[TEST_VIEW][i] for i in keep])


def auc(split: GenuineSplit, idx: Sequence[int], logits: np.ndarray) -> float | None:
    m = compute_metrics(split.labels[list(idx)], 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50))), 0.5, "fixed")
    return m["auc"]


def logo(split: GenuineSplit, table: FeatureTable, fit: Callable[[np.ndarray, np.ndarray, str], Any],
         score: Callable[[Any, np.ndarray], np.ndarray], desc: str = "", progress: bool = False) -> dict[str, Any]:
    """Leave-one-group-out: `fit(x, y, group)` -> a fitted head; `score(head, feats (n, crops, F))` -> logits."""
    per: dict[str, float | None] = {}
    for g in tqdm(split.groups, desc=f"leave-one-out {desc}".strip(), unit="cell", disable=not progress,
                  leave=False):
        x, y = rows(table, split, split.logo_train(g))
        head = fit(x, y, g)
        keep, feats = test_feats(table, split.logo_test(g))
        per[g] = auc(split, keep, score(head, feats))
    vals = [a for a in per.values() if a is not None and math.isfinite(a)]
    return {"logo_mean_auc": float(np.mean(vals)) if vals else None,
            "logo_min_auc": float(min(vals)) if vals else None, "per_group": per}


def probe_baseline(split: GenuineSplit, cache_dir: Path, seed: int, align: str, device: str, workers: int,
                   progress: bool, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The best baseline (probe: the shipped default's recipe) on the same views and cells."""
    from gendet.models import create_detector

    probe = create_detector("probe", **(config or {}))
    table, _ = feature_table(probe, split, cache_dir, seed, align, device, workers, progress)

    def fit(x: np.ndarray, y: np.ndarray, _g: str) -> dict[str, Any]:
        probe.fit_head(x, y, seed=seed)
        return probe.head_state()

    def score(state: dict[str, Any], feats: np.ndarray) -> np.ndarray:
        probe.load_head_state(state)
        return probe.head_logits(feats)

    return logo(split, table, fit, score, "probe", progress)


PROBE_ROW = "probe (baseline)"


class GenuineStudy(Study):
    """An ablation study on the genuine preset. A study says what it prepares once, which detector's features
    each seed caches and what its variants measure on them (`measure`); every seed here builds the cached
    feature table and the probe baseline on the same views and cells the same way for every study."""

    preset = "genuine"
    model: ClassVar[str] = ""  # the registered detector whose frozen features the cells read
    metrics = ("logo_mean_auc", "logo_min_auc")
    default_recipe = "genuine"
    protocol = ("Leave-one-group-out on the genuine manifest's splits (by near-duplicate cluster; the edited group "
                "never trained on): each cell trains on every other group's train split and the real train split, "
                "from cached frozen features of the grid crops and one seeded augmented crop per training image, "
                "and is tested on all of the held-out group's images against the real val split (AUC, mean logit "
                "over the grid crops). The probe baseline is trained on the same views, cells and seeds. "
                "Mean ± 95% t-interval over seeds.")

    def __init__(self, split: GenuineSplit, out: Path, cache: Path, recipe_name: str | None = None,
                 align: str = "jpeg", device: str = "cpu", progress: bool = True,
                 model_config: dict[str, Any] | None = None, probe_config: dict[str, Any] | None = None) -> None:
        super().__init__(out, recipe_name, progress=progress)
        self.split, self.cache = split, cache
        self.align, self.device = align, device
        self.model_config, self.probe_config = dict(model_config or {}), probe_config
        self.errors: dict[str, str] = {}

    def feature_model(self, seed: int) -> Any:
        """The detector whose features this seed's table caches."""
        raise NotImplementedError

    def measure(self, seed: int, table: FeatureTable, first: bool) -> dict[str, dict[str, Any]]:
        """Each variant's measurements on this seed's feature table."""
        raise NotImplementedError

    def run_seed(self, seed: int, first: bool) -> dict[str, dict[str, Any]]:
        t = time.monotonic()
        table, errors = feature_table(self.feature_model(seed), self.split, self.cache, seed, self.align, self.device,
                                      0, self.progress)
        self.errors.update(errors)
        self.timed(f"features_seed{seed}_s", t)
        t = time.monotonic()
        probe = probe_baseline(self.split, self.cache, seed, self.align, self.device, 0, self.progress,
                               self.probe_config)
        self.timed(f"probe_seed{seed}_s", t)
        rows = self.measure(seed, table, first)
        del table  # before the next seed's is built: two tables at once are a study's memory peak
        return {**rows, PROBE_ROW: probe}

    def preset_summary(self) -> dict[str, Any]:
        return {"model": self.model, "decode_errors": sorted(self.errors.items())}

    @classmethod
    def open(cls, data: Path, out: Path, recipe_name: str | None = None, align: str = "jpeg", device: str = "cpu",
             cache_dir: Path | None = None, progress: bool = True, model_config: dict[str, Any] | None = None,
             probe_config: dict[str, Any] | None = None, **extra: Any) -> GenuineStudy:
        """The study on manifest `data`, writing to `out` (cache: `cache_dir`, else `out/cache`); model_config /
        probe_config override the studied detector's and the probe's configs (small test models)."""
        return cls(load_split(data), out, Path(cache_dir) if cache_dir else out / "cache", recipe_name, align, device,
                   progress, model_config, probe_config, **extra)

    @classmethod
    def from_options(cls, data: Path, out: Path, options: AblationOptions) -> GenuineStudy:
        return cls.open(data, out, options.recipe, options.align, options.device, options.cache_dir, options.progress)
