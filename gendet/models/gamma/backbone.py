"""GAMMA's shared backbones: a feature pyramid (fine -> coarse) for the classification and segmentation branches.

- "cnn" (CPU): a stride-1 stem and one residual block per stage, each stage halving the
  resolution (strides 2, 4, 8, ... for len(widths) - 1 stages). No early down-sampling, because
  generation traces live in the finest pixels and the masks need them; about 0.2 M parameters and
  ~50 M multiply-adds at 64 px with widths (16, 32, 64, 128).
- "resnet18" / "resnet34" / "resnet50" (GPU): torchvision ResNets (layer1..layer4, strides 4..32),
  ImageNet-initialised only from a local file (`Detector.load_backbone_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gendet.models.resnet import RESNET_ARCHS, build_resnet, load_imagenet_weights

BACKBONES = ("cnn", *RESNET_ARCHS)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a projected shortcut (ResNet's BasicBlock)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ConvPyramid(nn.Module):
    """The CPU backbone: stem at full resolution, then stride-2 residual stages."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise ValueError("cnn backbone needs at least two widths (stem + one stage)")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(ResidualBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.channels = widths[1:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class ResNetPyramid(nn.Module):
    """torchvision ResNet layer1..layer4 outputs (strides 4, 8, 16, 32)."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        self.net = build_resnet(arch, num_classes=1)
        self.net.fc = nn.Identity()  # unused head: no parameters that never get a gradient
        expansion = 4 if arch == "resnet50" else 1
        self.channels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        out = []
        for layer in (n.layer1, n.layer2, n.layer3, n.layer4):
            x = layer(x)
            out.append(x)
        return out

    def load_imagenet(self, path: str) -> None:
        load_imagenet_weights(self.net, path)


def build_backbone(name: str, widths: Sequence[int]) -> ConvPyramid | ResNetPyramid:
    if name == "cnn":
        return ConvPyramid(widths)
    if name in RESNET_ARCHS:
        return ResNetPyramid(name)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
