"""GAMMA's branches on top of the backbone pyramid.

- `SegDecoder`: FPN-style top-down fusion of all pyramid levels into one map at the finest
  backbone stride; it is the "segmentation feature" both pixel heads read and the reverse
  cross-attention attends to.
- `PixelHead`: one segmentation head (3x3 conv -> ReLU -> 1x1 conv to the head's classes).
- `TokenGrid`: a feature map pooled to a fixed g x g grid of tokens with learned positions, so
  the attention layers do not depend on the input size.
- `ReverseCrossAttention`: classification tokens (queries) attend to segmentation tokens
  (keys/values), pre-norm, residual, then an MLP: the segmentation branch corrects the
  classification branch (GAMMA's reverse cross-attention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SegDecoder(nn.Module):
    def __init__(self, channels: Sequence[int], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in channels)
        self.fuse = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
                                  nn.ReLU(inplace=True))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            x = lat(f) + F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(x)


class PixelHead(nn.Module):
    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        hidden = max(8, dim // 2)
        self.net = nn.Sequential(nn.Conv2d(dim, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenGrid(nn.Module):
    def __init__(self, channels: int, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = int(grid)
        self.proj = nn.Conv2d(channels, dim, 1)
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(F.adaptive_avg_pool2d(x, self.grid))
        return x.flatten(2).transpose(1, 2) + self.pos


class ReverseCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, cls_tokens: torch.Tensor, seg_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(updated classification tokens, attention weights (B, Nq, Nk) averaged over heads)."""
        kv = self.norm_kv(seg_tokens)
        update, weights = self.attn(self.norm_q(cls_tokens), kv, kv, need_weights=True)
        x = cls_tokens + update
        return x + self.mlp(self.norm_mlp(x)), weights
