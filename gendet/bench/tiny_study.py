"""What every ablation study on the local benchmark (`gendet bench --ablation NAME`, the tiny presets) shares:
the data and the training subset's hold-out, reuse of a finished run by its key, the cross-generator row.

Each variant trains on one subset's train split per seed and is scored on every subset's val split (GenImage
Task 1; "unseen" leaves out the training subset). Every run is an ordinary checkpoint folder whose config.json
holds the key it was trained with, so an identical rerun, or an interrupted study, reuses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gendet.bench.study import AblationOptions, Study
from gendet.data.layouts import list_subsets, read_samples, split_holdout, with_photo_groups
from gendet.data.sample import Sample
from gendet.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE


class TinyStudy(Study):
    """A study on a built local benchmark (`data_root`: GenImage layout + manifest.json)."""

    preset = "tiny"
    # group real crops by source photo in the hold-out (manifest.json's crop sources)
    photo_groups: ClassVar[bool] = True

    def __init__(self, data_root: Path, out: Path, recipe_name: str | None = None, train_subset: str = "latent_flow",
                 align: str = "jpeg", device: str = "cpu", cache_dir: Path | None = None, progress: bool = True,
                 recipe: dict[str, Any] | None = None, model_config: dict[str, Any] | None = None) -> None:
        super().__init__(out, recipe_name, recipe, progress)
        self.data_root, self.train_subset = Path(data_root), train_subset
        self.align, self.device = align, device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.model_config = dict(model_config or {})

    @classmethod
    def from_options(cls, data: Path, out: Path, options: AblationOptions) -> TinyStudy:
        return cls(data, out, options.recipe, options.train_subset, options.align, options.device,
                   options.cache_dir, options.progress)

    def load_samples(self, max_per_class: int | None = None) -> list[Sample]:
        """The benchmark's samples (at most max_per_class per subset, split and class); the training subset
        must be one of its subsets."""
        samples = read_samples(self.data_root, layout="genimage")
        manifest = self.data_root / "manifest.json"
        if self.photo_groups and manifest.is_file():
            samples = with_photo_groups(samples, json.loads(manifest.read_text()))
        if self.train_subset not in list_subsets(samples):
            raise ValueError(f"train subset {self.train_subset!r} not in the data ({', '.join(list_subsets(samples))})")
        if max_per_class is None:
            return samples
        seen: dict[tuple[str, str, int], int] = {}
        out = []
        for s in samples:
            key = (s.generator, s.split, s.label)
            if seen.get(key, 0) < max_per_class:
                seen[key] = seen.get(key, 0) + 1
                out.append(s)
        return out

    def holdout(self, pool: list[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
        """Train / hold-out parts of a training pool (10% held out, by source photo)."""
        return split_holdout(pool, 0.1, seed)


def finished(run_dir: Path, key: dict[str, Any],
             stored_key: Callable[[dict[str, Any]], dict[str, Any]] = lambda k: k) -> bool:
    """Whether `run_dir` holds weights trained with `key` (`stored_key` normalises the stored one first)."""
    cfg = run_dir / CONFIG_FILE
    if not (cfg.is_file() and (run_dir / WEIGHTS_FILE).is_file()):
        return False
    stored = json.loads(cfg.read_text()).get("ablation_key")
    return stored is not None and stored_key(stored) == key


def cross_generator_row(per: dict[str, dict[str, Any]], train_subset: str,
                        apart: tuple[str, ...] = ()) -> dict[str, Any]:
    """Task 1 means over every val subset and over the unseen ones (not the training subset, nor `apart`)."""
    unseen = [g for g in per if g != train_subset and g not in apart]
    return {"acc_mean": float(np.mean([m["acc"] for m in per.values()])),
            "auc_mean": float(np.mean([m["auc"] for m in per.values()])),
            "acc_unseen": float(np.mean([per[g]["acc"] for g in unseen])) if unseen else None,
            "auc_unseen": float(np.mean([per[g]["auc"] for g in unseen])) if unseen else None,
            "per_subset": {g: {"acc": m["acc"], "auc": m["auc"]} for g, m in per.items()}}
