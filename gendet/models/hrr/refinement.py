"""Additive feature refinement (AFR): a correntropy-induced sparse additive machine over feature components.

Given components z in R^J (from the fusion network):
  standardise      z^_j = BN(z)_j                               (batch statistics, running at eval)
  bottleneck       u_j ~ q(u_j | x) = N(g_j z^_j, s_j^2)        (g_j, s_j learned; u_j = g_j z^_j at eval)
  additive model   f(u) = b + sum_j w_j . phi(u_j),  phi(u) = [u, exp(-(u - c_k)^2 / (2 h^2)) for k]
                   (a linear term plus K-1 Gaussian bumps at fixed centres c_k on [-2, 2], spacing h)
  loss             mean_i rho(e_i) + lambda sum_j ||w_j||_2 + beta KL,   e_i = 1 - y_i f_i,  y_i in {-1, +1}
with rho the Welsch (correntropy-induced) loss  rho(e) = sigma^2 (1 - exp(-e^2 / (2 sigma^2)))  or, for
the ablation, the squared loss rho(e) = e^2 / 2 (both ~ e^2/2 near 0; Welsch's influence
rho'(e) = e exp(-e^2/(2 sigma^2)) vanishes for large |e|, so a flipped label cannot pull hard), and
  KL = (1/J) sum_j mean_i KL(N(g_j z^_ij, s_j^2) || N(0, 1))
     = (1/J) sum_j mean_i (g_j^2 z^_ij^2 + s_j^2 - ln s_j^2 - 1) / 2,
an information bottleneck on each component: a component whose information the loss does not pay
for collapses to the prior (g_j -> 0, s_j -> 1). The group penalty zeroes whole additive functions:
component j is *kept* when ||w_j|| >= keep_tol * max_k ||w_k||; at evaluation dropped components
are masked out, so what the report says is dropped really plays no part in the score.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("welsch", "squared")


def margin_residual(f: torch.Tensor, label01: torch.Tensor) -> torch.Tensor:
    """e = 1 - y f with y = 2 label - 1 (1 = generated): 0 at the target margin, 2 when f = -y."""
    return 1.0 - (2.0 * label01.to(f.dtype) - 1.0) * f


def welsch_loss(e: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Correntropy-induced (Welsch) loss per sample: sigma^2 (1 - exp(-e^2 / (2 sigma^2))), bounded by sigma^2."""
    return sigma**2 * (1.0 - torch.exp(-e.pow(2) / (2.0 * sigma**2)))


def squared_loss(e: torch.Tensor) -> torch.Tensor:
    return 0.5 * e.pow(2)


def robust_loss(e: torch.Tensor, kind: str, sigma: float = 1.0) -> torch.Tensor:
    if kind == "welsch":
        return welsch_loss(e, sigma)
    if kind == "squared":
        return squared_loss(e)
    raise ValueError(f"refine_loss must be one of {LOSSES}, got {kind!r}")


class AdditiveRefiner(nn.Module):
    def __init__(self, n_components: int, n_basis: int = 6, keep_tol: float = 0.05, init_log_var: float = -4.0) -> None:
        super().__init__()
        if n_basis < 2:
            raise ValueError("n_basis must be >= 2 (a linear term and at least one bump)")
        self.keep_tol = float(keep_tol)
        self.norm = nn.BatchNorm1d(n_components, affine=False)
        self.gate = nn.Parameter(torch.ones(n_components))
        self.log_var = nn.Parameter(torch.full((n_components,), float(init_log_var)))
        self.weight = nn.Parameter(torch.randn(n_components, n_basis) * 0.01)
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("centres", torch.linspace(-2.0, 2.0, n_basis - 1))
        self.width = 4.0 / (n_basis - 2) if n_basis > 2 else 1.0  # the centres' spacing (computed in Python:
        # a build on the meta device, as count_parameters does, has no values to read)

    def basis(self, u: torch.Tensor) -> torch.Tensor:
        """(B, J) -> (B, J, n_basis)."""
        bumps = torch.exp(-(u.unsqueeze(-1) - self.centres).pow(2) / (2 * self.width**2))
        return torch.cat([u.unsqueeze(-1), bumps], dim=-1)

    def group_norms(self) -> torch.Tensor:
        return self.weight.detach().norm(dim=1)

    def kept_mask(self) -> torch.Tensor:
        norms = self.group_norms()
        return norms >= self.keep_tol * norms.max().clamp_min(1e-12)

    def penalty(self) -> torch.Tensor:
        """sum_j ||w_j||_2, smoothed at 0 (sqrt(||w||^2 + 1e-8)) so its gradient is defined everywhere."""
        return torch.sqrt(self.weight.pow(2).sum(dim=1) + 1e-8).sum()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, J) components -> (f of shape (B,), KL averaged over components and batch)."""
        mu = self.norm(z) * self.gate
        var = self.log_var.exp()
        kl = 0.5 * (mu.pow(2) + var - self.log_var - 1.0).mean()
        u = mu + var.sqrt() * torch.randn_like(mu) if self.training else mu
        weight = self.weight if self.training else self.weight * self.kept_mask().to(self.weight.dtype).unsqueeze(1)
        f = torch.einsum("bjk,jk->b", self.basis(u), weight) + self.bias
        return f, kl

    def report(self, names: Sequence[str]) -> dict[str, object]:
        """Which components the refinement kept, by name, with every component's group norm."""
        norms = self.group_norms().tolist()
        keep = self.kept_mask().tolist()
        if len(names) != len(norms):
            raise ValueError(f"{len(names)} names for {len(norms)} components")
        kept = [n for n, k in zip(names, keep, strict=True) if k]
        return {"n_components": len(norms), "n_kept": len(kept), "kept": kept, "keep_tol": self.keep_tol,
                "group_norms": {n: round(v, 6) for n, v in zip(names, norms, strict=True)}}


def linear_head_loss(f: torch.Tensor, label01: torch.Tensor) -> torch.Tensor:
    """The ablation's 'without refinement' head is trained with plain BCE on the logit."""
    return F.binary_cross_entropy_with_logits(f, label01.to(f.dtype))

