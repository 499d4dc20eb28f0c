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


class OptimizerStep:
    """What every training step of both loops ends with, and its part of the resume state: (fp16) unscaling,
    gradient clipping, the AdamW step, the schedule, clearing the gradients, and the weights' EMA if kept.

    `clip` lists the parameters whose joint gradient norm is clipped, in the order the norm is summed
    (default: the optimiser's groups), so a loop keeps its exact arithmetic."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float, total_steps: int,
                 warmup: float, betas: tuple[float, float] = (0.9, 0.999), grad_clip: float | None = None,
                 scaler: torch.amp.GradScaler | None = None, clip: list[nn.Parameter] | None = None,
                 ema: torch.optim.swa_utils.AveragedModel | None = None, ema_of: nn.Module | None = None) -> None:
        self.optimizer, self.scheduler = adamw_with_schedule(params, lr, weight_decay, total_steps, warmup, betas)
        self.grad_clip, self.scaler, self.ema, self.ema_of = grad_clip, scaler, ema, ema_of
        self.clip = clip if clip is not None else [p for g in self.optimizer.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.clip, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.ema_of)

    def state_dict(self) -> dict[str, Any]:
        """Keys "optimizer", "scheduler", "scaler" (None without fp16) and "ema" when kept (the names both resume
        files use)."""
        state: dict[str, Any] = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                                 "scaler": None if self.scaler is None else self.scaler.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
