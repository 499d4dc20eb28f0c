"""Flow-matching formulas (SPEC): x_t = (1-t) x0 + t eps, v = eps - x0, t = sigmoid(N(0,1))."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gendet.generation.flow import (
    flow_matching_loss,
    interpolate,
    sample_ode,
    sample_t,
    time_grid,
    velocity_target,
)

from .helpers import single_thread


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def test_interpolation_endpoints_and_velocity_is_its_time_derivative() -> None:
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    assert torch.allclose(interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.allclose(interpolate(x0, eps, torch.ones(3)), eps)
    t, h = torch.tensor([0.2, 0.5, 0.7]), 1e-3
    fd = (interpolate(x0.double(), eps.double(), t.double() + h) - interpolate(x0.double(), eps.double(), t.double()))
    assert torch.allclose(fd / h, velocity_target(x0, eps).double(), atol=1e-6)
    assert torch.allclose(interpolate(x0, eps, torch.full((3,), 0.25)), 0.75 * x0 + 0.25 * eps)


def test_sample_t_is_logit_normal() -> None:
    t = sample_t(20000, torch.Generator().manual_seed(0))
    assert t.min() > 0 and t.max() < 1
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean().item()) < 0.03 and abs(logit.std().item() - 1) < 0.03


def test_loss_matches_the_formula() -> None:
    x0 = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = {}

    def model(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen["xt"], seen["t"] = xt, t
        return torch.zeros_like(xt)

    torch.manual_seed(7)
    loss = flow_matching_loss(model, x0)
    torch.manual_seed(7)  # replay the same draws: eps first, then t
    eps = torch.randn_like(x0)
    t = torch.sigmoid(torch.randn(4))
    assert torch.allclose(seen["t"], t)
    assert torch.allclose(seen["xt"], (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps)
    assert torch.allclose(loss, F.mse_loss(torch.zeros_like(x0), eps - x0))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampler_integrates_from_noise_to_data(method: str) -> None:
    # For data concentrated at one point c, the exact velocity is v(x, t) = (x - c) / t and the
    # trajectories are straight lines, so any step count must land exactly on c.
    c = torch.full((2, 3, 4, 4), 0.3)

    def exact(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x - c) / t.view(-1, 1, 1, 1)

    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for steps in (1, 3):
        assert torch.allclose(sample_ode(exact, noise, steps, method), c, atol=1e-5)


def test_time_grid_runs_from_one_to_zero() -> None:
    for shift in (1.0, 3.0):
        ts = time_grid(5, shift)
        assert ts[0] == 1 and ts[-1] == 0 and torch.all(ts[1:] < ts[:-1])
    with pytest.raises(ValueError):
        sample_ode(lambda x, t: x, torch.zeros(1, 1), 2, "rk4")


def test_x_prediction_gives_the_flow_velocity() -> None:
    from gendet.generation.pixel_flow import velocity_fn

    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([0.2, 0.5, 0.9])
    oracle = velocity_fn(lambda xt, tt: x0, "x")  # a network that predicts the clean image exactly
    assert torch.allclose(oracle(interpolate(x0, eps, t), t), velocity_target(x0, eps), atol=1e-5)
    assert velocity_fn(torch.nn.Identity(), "v") is not None
    with pytest.raises(ValueError):
        velocity_fn(torch.nn.Identity(), "eps")
