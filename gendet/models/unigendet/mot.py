"""Mixture-of-transformers: two experts that share one self-attention per layer.

Every token belongs to one expert (0 = understanding, 1 = generation). Each expert has
its own norms, QKV / output projections and MLP; the attention itself runs once over the
packed sequence of both experts' tokens, so understanding tokens read generation tokens
and the other way round, as far as the attention mask allows (BAGEL's MoT layout).

Positions of each expert's tokens are fixed per sequence layout (the same for every
sample in a batch), so routing is an index_select, not a per-sample gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UND, GEN = 0, 1
EXPERTS = ("und", "gen")


class ExpertBlock(nn.Module):
    """One expert's weights in one layer: pre-norms, QKV, output projection, MLP."""

    def __init__(self, hidden: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        inner = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))


class MoTLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.heads = heads
        self.experts = nn.ModuleList([ExpertBlock(hidden, mlp_ratio) for _ in EXPERTS])

    def forward(self, x: torch.Tensor, routes: list[torch.Tensor], mask: torch.Tensor,
                want_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, L, h); routes[e] = positions of expert e; mask (B or 1, L, L) bool, True = may attend."""
        b, n, h = x.shape
        qkv = x.new_empty(b, n, 3 * h)
        for e, idx in enumerate(routes):
            if idx.numel():
                blk = self.experts[e]
                qkv[:, idx] = blk.qkv(blk.norm1(x[:, idx]))
        q, k, v = qkv.view(b, n, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = mask.unsqueeze(1)  # broadcast over heads
        weights = None
        if want_attention:
            # explicit softmax so the caller can read the maps (explanations); same maths as SDPA
            scores = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
            weights = scores.masked_fill(~attn_mask, float("-inf")).softmax(-1)
            att = weights @ v
        else:
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        att = att.transpose(1, 2).reshape(b, n, h)
        out = x.clone()
        for e, idx in enumerate(routes):
            if idx.numel():
                blk = self.experts[e]
                y = x[:, idx] + blk.proj(att[:, idx])
                out[:, idx] = y + blk.mlp(blk.norm2(y))
        return out, weights


class MoTTransformer(nn.Module):
    def __init__(self, hidden: int, depth: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList([MoTLayer(hidden, heads, mlp_ratio) for _ in range(depth)])
        self.final_norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in EXPERTS])

    def forward(self, x: torch.Tensor, experts: torch.Tensor, mask: torch.Tensor, keep_layers: tuple[int, ...] = (),
                want_attention: bool = False) -> dict[str, object]:
        """Returns {"hidden": final normed states, "layers": {k: states after layer k (1-based)},
        "attention": [per-layer (B, heads, L, L)] when asked}."""
        if experts.ndim != 1 or experts.shape[0] != x.shape[1]:
            raise ValueError(f"experts must be (L,) = ({x.shape[1]},), got {tuple(experts.shape)}")
        if mask.shape[-2:] != (x.shape[1], x.shape[1]):
            raise ValueError(f"mask must be (.., {x.shape[1]}, {x.shape[1]}), got {tuple(mask.shape)}")
        routes = [torch.nonzero(experts == e).flatten() for e in range(len(EXPERTS))]
        kept: dict[int, torch.Tensor] = {}
        attention = []
        for i, layer in enumerate(self.layers, start=1):
            x, w = layer(x, routes, mask, want_attention)
            if i in keep_layers:
                kept[i] = x
            if w is not None:
                attention.append(w)
        out = x.clone()
        for e, idx in enumerate(routes):
            if idx.numel():
                out[:, idx] = self.final_norms[e](x[:, idx])
        return {"hidden": out, "layers": kept, "attention": attention}

    def expert_parameters(self, expert: int) -> list[nn.Parameter]:
        params = [p for layer in self.layers for p in layer.experts[expert].parameters()]
        return params + list(self.final_norms[expert].parameters())
