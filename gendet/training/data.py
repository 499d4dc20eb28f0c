"""The data a training run reads: a labelled folder or manifest, its train split, a held-out part of it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gendet.data.layouts import detect_layout, read_samples, select_split, split_holdout, with_photo_groups
from gendet.data.sample import Sample
from gendet.data.shards import is_shard_dir, read_shard_samples

SHARDS_LAYOUT = "shards"  # a folder written by `gendet data shard` (gendet.data.shards), detected by "auto"


@dataclass
class TrainingData:
    root: Path
    layout: str
    all: list[Sample]  # every sample read (all splits)
    train: list[Sample]  # the train split minus the hold-out
    val: list[Sample]  # the hold-out (early stopping, threshold); empty with holdout 0


def load_training_data(data: str | os.PathLike, layout: str = "auto", subset: str | None = None,
                       holdout: float = 0.1, seed: int = 0, data_info: dict[str, Any] | None = None) -> TrainingData:
    """Read `data`, take its train split and hold out `holdout` of it, grouped by near-duplicate cluster or source
    photo when known (`data_info`: a built benchmark's description, whose crops keep their photo's side).
    ValueError/FileNotFoundError say what is unusable."""
    root = Path(data).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"training data {root} does not exist")
    if layout == SHARDS_LAYOUT or (layout == "auto" and is_shard_dir(root)):
        layout = SHARDS_LAYOUT  # one index file per data set instead of a directory walk per rank
        all_samples = read_shard_samples(root, subset)
    else:
        layout = detect_layout(root) if layout == "auto" else layout
        all_samples = read_samples(root, layout, subset)
    if data_info is not None and "subsets" in data_info:
        all_samples = with_photo_groups(all_samples, data_info)
    samples = select_split(all_samples, "train")
    if not samples:
        raise ValueError(f"no training samples (split 'train') in {root}" + (f" subset {subset!r}" if subset else ""))
    train, val = split_holdout(samples, holdout, seed)
    if len({s.label for s in train}) < 2:
        raise ValueError(f"the training data holds only one class ({len(train)} samples): need real and "
                         "generated images")
    return TrainingData(root, layout, all_samples, train, val)
