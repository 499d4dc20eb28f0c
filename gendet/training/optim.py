"""The optimiser both training loops use: AdamW without weight decay on 1-D parameters, warm-up + cosine."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def param_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: no weight decay on biases and normalisation parameters (1-D)."""
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_steps(warmup: float, total_steps: int) -> int:
    """`warmup` as steps: a fraction of all steps when < 1, else a number of steps."""
    return int(round(warmup * total_steps)) if warmup < 1 else int(warmup)


def cosine_with_warmup(total_steps: int, warmup: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def adamw_with_schedule(params: Iterable[nn.Parameter], lr: float, weight_decay: float, total_steps: int,
                        warmup: float, betas: tuple[float, float] = (0.9, 0.999),
                        ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `param_groups(params)` and its warm-up + cosine schedule over `total_steps` optimiser steps."""
    optimizer = torch.optim.AdamW(param_groups(params, weight_decay), lr=lr, betas=betas)
    schedule = cosine_with_warmup(total_steps, warmup_steps(warmup, total_steps))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
