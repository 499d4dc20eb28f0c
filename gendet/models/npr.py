"""NPR (Tan et al., CVPR 2024, "Rethinking the up-sampling operations in CNN-based generative network
for generalizable deepfake detection"): neighbouring-pixel relationships.

Generators up-sample; up-sampling makes the pixels inside each 2x2 block correlated in a
way camera images are not. NPR exposes that with the residual
    r = x - up2(down2(x))   (nearest-neighbour both ways, i.e. each pixel minus its block's
                              top-left pixel), fed as r * 2/3 to a small ResNet,
computed on the normalised input exactly as their released network does.

The network mirrors theirs so `gendet import-weights --format npr` maps key for key
(prefix "net."): conv1 3x3 stride 2 (no 7x7 stem), bn1, relu, maxpool, layer1 and layer2
of a ResNet-50 (Bottleneck blocks [3, 4]), global average pool, fc1 512 -> 1.
`block`, `layers` and `width` shrink it for CPU runs. `resize` is True by default (their
evaluation resizes too): `resize=False` keeps the 2x2 up-sampling structure intact but also
the real photos' 8x8 JPEG grid, which format alignment cannot then hide; use it on data
whose classes share container and size. Train-time augmentation: horizontal flip only, as in
their training script (no blur/JPEG); the flip keeps 2x2 blocks intact for even widths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

from gendet.data.augment import make_augment, merge_augment
from gendet.data.preprocess import ImageOp
from gendet.models.base import Detector

Block = type[BasicBlock] | type[Bottleneck]
BLOCKS: dict[str, Block] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x - up2(down2(x)) with nearest interpolation; odd trailing rows/columns are cropped."""
    h, w = x.shape[-2:]
    x = x[..., : h - h % 2, : w - w % 2]
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)


class NPRNet(nn.Module):
    """The two-stage ResNet of NPR (module names as in their networks/resnet.py)."""

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4), width: int = 64) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        if len(layers) != 2 or min(layers) < 1:
            raise ValueError(f"layers must be two positive block counts, got {list(layers)}")
        cls = BLOCKS[block]
        self._inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(cls, width, int(layers[0]))
        self.layer2 = self._make_layer(cls, 2 * width, int(layers[1]), stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(2 * width * cls.expansion, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, cls: Block, planes: int, n: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * cls.expansion:
            downsample = nn.Sequential(
                conv1x1(self._inplanes, planes * cls.expansion, stride), nn.BatchNorm2d(planes * cls.expansion)
            )
        blocks = [cls(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * cls.expansion
        blocks += [cls(self._inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(npr_residual(x) * (2.0 / 3.0)))))
        x = self.layer2(self.layer1(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.features(x))


class NPRDetector(Detector):
    name = "npr"
    bench: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {"label": "npr", "config": {"image_size": 64}},
                                                  "standard": {"label": "npr"}}
    description = (
        "NPR (Tan et al. 2024): nearest-2x up-sampling residual x - up(down(x)) into a ResNet-50 "
        "cut after layer2 (3x3/2 stem, fc1 512->1)"
    )
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "resize": True,
        "block": "bottleneck",
        "layers": [3, 4],
        "width": 64,
        "augment": {"flip_prob": 0.5},
    }
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "block": "basic", "layers": [1, 1], "width": 16}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        c = self.config
        self.net = NPRNet(str(c["block"]), [int(n) for n in c["layers"]], int(c["width"]))

    def train_augment(self) -> ImageOp | None:
        return make_augment(**self.config["augment"])

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The NPR input map (for inspection and explanations)."""
        return npr_residual(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net.fc1(feats).squeeze(-1)
