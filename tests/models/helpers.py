"""Small builders shared by the model tests."""

from __future__ import annotations

from typing import Any

import torch

from gendet.models import create_detector, get_detector_class
from gendet.models.base import Detector


def small_config(name: str) -> dict[str, Any]:
    """A detector's CPU-test configuration (its `small_config`, if it declares one)."""
    return dict(getattr(get_detector_class(name), "small_config", {}))


def small_detector(name: str, **overrides: Any) -> Detector:
    return create_detector(name, **{**small_config(name), **overrides})


def random_batch(det: Detector, n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = int(det.config["image_size"])
    return {"image": torch.randn(n, 3, s, s, generator=g), "label": torch.tensor([0, 1] * (n // 2) + [1] * (n % 2))}


def randomize_bn_stats(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm running statistics, so eval-mode comparisons exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
