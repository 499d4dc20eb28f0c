"""The fusion network: from per-scale reconstruction residuals to named feature components.

Each scale's |residual| goes through one shared convolutional encoder (a residual is a residual
at any scale; sharing keeps the network small enough for the tiny benchmark). A 1x1 convolution
over the concatenated per-scale maps fuses the scales. The feature components are then
- per scale: the encoder's globally pooled channels and three residual statistics
  (mean |r|, standard deviation, high-frequency energy mean |r - blur3x3(r)|);
- fused: the fusion layer's pooled channels.
Their names (`component_names`) are what the refinement's report of kept components refers to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

STATISTICS = ("mean_abs", "std", "hf_energy")


RESIDUAL_GAIN = 10.0  # residuals are ~0.05 of the [-1, 1] range; x10 puts the first layer's input near unit scale


def conv_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    # No BatchNorm: with a few hundred steps its running statistics lag the moving weights, and the
    # train-mode and eval-mode features of the same image differed by ~40% (scores shifted at eval).
    conv = nn.Conv2d(cin, cout, 3, stride, 1)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True))


def residual_statistics(r: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) signed residual -> (B, 3): mean |r|, std, mean |r - 3x3 box blur of r|."""
    blur = F.avg_pool2d(r, 3, stride=1, padding=1, count_include_pad=False)
    return torch.stack([r.abs().mean((1, 2, 3)), r.flatten(1).std(dim=1), (r - blur).abs().mean((1, 2, 3))], dim=1)


class ResidualEncoder(nn.Module):
    """|residual| (3 ch) -> (channels, N/8, N/8): four 3x3 conv-ReLU layers, the last three with stride 2."""

    def __init__(self, width: int, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv_relu(3, width, 1), conv_relu(width, 2 * width, 2),
                                    conv_relu(2 * width, 2 * width, 2), conv_relu(2 * width, channels, 2))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.layers(r * RESIDUAL_GAIN)


class FusionNetwork(nn.Module):
    def __init__(self, scales: Sequence[float], width: int = 16, channels: int = 32) -> None:
        super().__init__()
        self.scales = [float(s) for s in scales]
        self.channels = int(channels)
        self.encoder = ResidualEncoder(int(width), self.channels)
        k = len(self.scales)
        self.fuse = nn.Sequential(nn.Conv2d(k * self.channels, self.channels, 1), nn.ReLU(inplace=True))

    @property
    def n_components(self) -> int:
        return len(self.scales) * (self.channels + len(STATISTICS)) + self.channels

    def component_names(self) -> list[str]:
        names = []
        for s in self.scales:
            names += [f"s{s:g}/ch{c:02d}" for c in range(self.channels)]
            names += [f"s{s:g}/{stat}" for stat in STATISTICS]
        return names + [f"fused/ch{c:02d}" for c in range(self.channels)]

    def forward(self, residuals: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, N, N) signed residuals -> (B, n_components)."""
        b, k = residuals.shape[:2]
        if k != len(self.scales):
            raise ValueError(f"expected residuals at {len(self.scales)} scales, got {k}")
        flat = residuals.flatten(0, 1)
        maps = self.encoder(flat.abs())  # DIRE feeds |x - recon|
        pooled = maps.mean((2, 3)).view(b, k, -1)
        stats = residual_statistics(flat).view(b, k, -1)
        fused = self.fuse(maps.view(b, k * self.channels, *maps.shape[-2:])).mean((2, 3))
        return torch.cat([torch.cat([pooled, stats], dim=2).flatten(1), fused], dim=1)
