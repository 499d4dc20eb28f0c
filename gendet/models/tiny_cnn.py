"""A tiny CNN: seconds to train on CPU, for tests and smoke runs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from gendet.models.base import Detector


class TinyCNN(Detector):
    name = "tiny_cnn"
    description = "4-layer CNN (~25k params) for tests and quick smoke runs"
    default_config: ClassVar[dict[str, Any]] = {"image_size": 32, "width": 16}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        w = int(self.config["width"])
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats).squeeze(-1)
