"""Training: `train(detector, train_samples, val_samples, pp, TrainConfig, out_dir)`.

Names are imported lazily: detector modules import gendet.data.augment,
and must not pull in the trainer (and with it the evaluation stack) by doing so.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ResumeError", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("gendet.training.trainer"), name)
    raise AttributeError(f"module 'gendet.training' has no attribute {name!r}")
