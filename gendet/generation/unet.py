"""A small time-conditioned U-Net for flow matching (pixel or latent space).

`patch` > 1 folds p x p pixel blocks into channels first (pixel-unshuffle), so with p=4 a
64 px image is processed as a 16x16 grid of 48 channels: the model stays in pixel
space (the fold is fixed and exactly invertible) but costs ~p^2 x less on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from gendet.generation.blocks import Attention, Downsample, ResBlock, TimeEmbedding, Upsample, norm, zero_init_blocks


class UNet(nn.Module):
    def __init__(
        self,
        in_ch: int,
        base: int = 64,
        mults: tuple[int, ...] = (1, 2, 4),
        blocks: int = 1,
        attn_levels: tuple[int, ...] = (2,),
        patch: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch = patch
        c_in = in_ch * patch * patch
        self.time = TimeEmbedding(base)
        emb = self.time.out_dim
        chans = [base * m for m in mults]
        self.fold = nn.PixelUnshuffle(patch) if patch > 1 else nn.Identity()
        self.unfold = nn.PixelShuffle(patch) if patch > 1 else nn.Identity()
        self.conv_in = nn.Conv2d(c_in, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = chans[0]
        for lvl, c in enumerate(chans):
            layers = nn.ModuleList()
            for _ in range(blocks):
                layers.append(ResBlock(ch, c, emb, dropout))
                ch = c
                if lvl in attn_levels:
                    layers.append(Attention(c))
            self.down.append(layers)
            self.downsample.append(Downsample(c) if lvl < len(chans) - 1 else nn.Identity())
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb, dropout), Attention(ch), ResBlock(ch, ch, emb, dropout)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(chans))):
            c = chans[lvl]
            layers = nn.ModuleList()
            for i in range(blocks):
                layers.append(ResBlock(ch + (c if i == 0 else 0), c, emb, dropout))
                ch = c
                if lvl in attn_levels:
                    layers.append(Attention(c))
            self.up.append(layers)
            self.upsample.append(Upsample(c, chans[lvl - 1]) if lvl > 0 else nn.Identity())
            if lvl > 0:
                ch = chans[lvl - 1]
        self.norm_out = norm(ch)
        self.conv_out = nn.Conv2d(ch, c_in, 3, padding=1)

    def init_weights(self) -> None:
        zero_init_blocks(self)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        h = self.conv_in(self.fold(x))
        skips = []
        for layers, down in zip(self.down, self.downsample, strict=True):
            for layer in layers:
                h = layer(h, emb)
            skips.append(h)
            h = down(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layers, up in zip(self.up, self.upsample, strict=True):
            h = torch.cat([h, skips.pop()], dim=1)
            for layer in layers:
                h = layer(h, emb)
            h = up(h)
        return self.unfold(self.conv_out(torch.nn.functional.silu(self.norm_out(h))))
