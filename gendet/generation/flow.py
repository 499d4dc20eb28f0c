"""Rectified-flow matching (SPEC, UniGenDet's generation loss).

x_t = (1 - t) * x0 + t * eps,  target velocity v = eps - x0,  t = sigmoid(N(0, 1)).
Sampling integrates dx/dt = v from t = 1 (pure noise) down to t = 0 (data).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_t(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal flow times: sigmoid of a standard normal."""
    return torch.sigmoid(torch.randn(n, generator=generator))


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(-1, *([1] * (x0.ndim - 1)))
    return (1 - t) * x0 + t * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return eps - x0


def flow_matching_loss(model: Velocity, x0: torch.Tensor) -> torch.Tensor:
    """MSE between the predicted and the target velocity at a random (t, eps); uses the global RNG."""
    eps = torch.randn_like(x0)
    t = sample_t(x0.shape[0])
    return F.mse_loss(model(interpolate(x0, eps, t), t), velocity_target(x0, eps))


def time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps+1 times from 1 to 0. shift > 1 spends more steps at high noise (SD3-style time shift)."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def sample_ode(model: Velocity, noise: torch.Tensor, steps: int, method: str = "heun",
               shift: float = 1.0) -> torch.Tensor:
    """Integrate from noise (t=1) to data (t=0) with Euler or Heun (Heun's last step is Euler)."""
    if method not in ("euler", "heun"):
        raise ValueError(f"unknown sampler {method!r}: use 'euler' or 'heun'")
    if steps < 1:
        raise ValueError("need at least one sampling step")
    ts = time_grid(steps, shift).tolist()
    x = noise
    n = x.shape[0]
    for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
        v = model(x, torch.full((n,), t_cur))
        x_next = x + (t_next - t_cur) * v
        if method == "heun" and t_next > 0:
            v_next = model(x_next, torch.full((n,), t_next))
            x_next = x + (t_next - t_cur) * 0.5 * (v + v_next)
        x = x_next
    return x
