"""Shared training helpers for the generators: batches, schedules, EMA, loss logs."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm


def random_batch(x: torch.Tensor, batch_size: int, flip: bool = True) -> torch.Tensor:
    """A batch drawn with replacement from the global (seeded) RNG, randomly mirrored left-right."""
    idx = torch.randint(0, x.shape[0], (batch_size,))
    b = x[idx]
    if flip:
        mask = torch.rand(batch_size) < 0.5
        b = torch.where(mask.view(-1, 1, 1, 1), b.flip(-1), b)
    return b


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int,
                  final_frac: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to `final_frac` of the base rate: short budgets end on a low lr."""
    warmup = max(1, min(warmup, max(1, steps // 4)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """EMA of `model` whose decay warms up as (1+n)/(10+n), so short runs are not dominated by init."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(ema_params, params, 1 - d)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


class LossLog:
    """Running means of named losses; keeps ~`points` evenly spaced snapshots for the summary."""

    def __init__(self, steps: int, points: int = 20) -> None:
        self.every = max(1, steps // points)
        self.sums: dict[str, float] = {}
        self.count = 0
        self.curve: list[dict[str, float]] = []

    def add(self, step: int, **values: float) -> dict[str, float]:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1
        if self.count == self.every:
            snap = {"step": step + 1, **{k: round(s / self.count, 5) for k, s in self.sums.items()}}
            self.curve.append(snap)
            self.sums, self.count = {}, 0
            return snap
        return {}

    def summary(self) -> dict:
        final = self.curve[-1] if self.curve else {}
        return {"final": {k: v for k, v in final.items() if k != "step"}, "curve": self.curve}


def progress_bar(steps: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=steps, desc=desc, disable=not enabled, unit="step", dynamic_ncols=True, leave=False)
