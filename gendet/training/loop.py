"""The one step loop every trainer runs: batches -> objective -> backward -> optimiser step.

`StepLoop.run` takes a plan's batches (a data loader) and an `Objective` and owns what is the same for every
training run: moving the batch to the device, autocast (bf16 / fp16), gradient accumulation over groups of
batches, DistributedDataParallel (no_sync inside a group, per-rank seeding, gradients averaged by hand when a
group's last batch was skipped), skipping a batch with too few decodable items on any rank, noting each bad
file once, the non-finite loss check, the optimiser step (`OptimizerStep`: clipping, AdamW, schedule, EMA),
and the running loss window. Its progress is part of the caller's resume state (`state_dict`).

What differs between trainers is outside it: the batch plan (epochs of seeded permutations, or UniGenDet's
step-indexed mixed batches), the objective (a detector's `loss`, GDUF, DIGA: the loss lives with the model),
validation and what is saved at the end.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from gendet.training import distributed
from gendet.training.optim import OptimizerStep


class Objective(Protocol):
    """What a training step minimises: `loss(batch)` -> {"loss": mean over this process's items, other parts
    to log}. The batch's tensors are on the device; the call runs under the loop's autocast."""

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]: ...


def note_errors(errors: Iterable[tuple[str, str]], store: dict[str, str], where: str, log: Any,
                dist: distributed.DistInfo, context: dict[str, Any]) -> None:
    """Record each bad file once (not once per epoch): in `store`, the log and on stderr."""
    for path, reason in errors:
        if path not in store:
            store[path] = reason
            log.write({"kind": "decode_error", "where": where, "path": path, "reason": reason, **context})
            if dist.is_main:
                tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)


class StepLoop:
    """Optimiser steps over batches. `model` is what the objective calls (DDP-wrapped under torchrun), `module`
    the bare model (for hand-averaged gradients). min_items: a batch with fewer decodable items on any rank is
    skipped (0: never; the objective then decides)."""

    def __init__(self, model: nn.Module, module: nn.Module, opt: OptimizerStep, device: torch.device,
                 amp_dtype: torch.dtype | None, dist: distributed.DistInfo, log: Any, seed: int,
                 grad_accum: int = 1, min_items: int = 1, name: str = "") -> None:
        self.model, self.module, self.opt, self.device = model, module, opt, device
        self.amp_dtype, self.dist, self.log, self.seed = amp_dtype, dist, log, seed
        self.grad_accum, self.min_items, self.name = grad_accum, min_items, name
        self.context: dict[str, Any] = {}  # what the caller adds to every log row (e.g. the epoch)
        # progress (the caller saves it with its resume state)
        self.step = 0  # optimiser steps taken
        self.consumed = 0  # batches of the current plan done (whole accumulation groups)
        self.window: dict[str, list[float]] = {}  # part -> [sum, batches] since the last reset_window
        self.totals: dict[str, list[float]] = {}  # the same since the last reset_totals (e.g. one epoch)
        self.errors: dict[str, str] = {}
        self.skipped_batches = 0

    # -- resume state ------------------------------------------------------------
    STATE_KEYS = ("step", "consumed", "window", "totals", "errors", "skipped_batches")

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.STATE_KEYS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self.STATE_KEYS:
            setattr(self, k, state[k])

    # -- loss bookkeeping -----------------------------------------------------------
    def window_means(self) -> dict[str, float]:
        return {k: s / n for k, (s, n) in self.window.items() if n}

    def total_means(self) -> dict[str, float]:
        return {k: s / n for k, (s, n) in self.totals.items() if n}

    def reset_window(self) -> None:
        self.window = {}

    def reset_totals(self) -> None:
        self.totals = {}

    def _add(self, values: dict[str, float]) -> None:
        for store in (self.window, self.totals):
            for k, v in values.items():
                acc = store.setdefault(k, [0.0, 0])
                acc[0] += v
                acc[1] += 1

    # -- the loop ----------------------------------------------------------------
    def run(self, batches: Iterable[dict[str, Any]], n_batches: int, start: int, objective: Objective,
            after_step: Callable[[], bool]) -> bool:
        """Train on `batches` (numbers start .. n_batches - 1 of a plan of n_batches, grouped by grad_accum);
        after every optimiser step `after_step()` may stop the loop (returns True then)."""
        self.consumed = start
        accumulated = synced = False
        self.opt.optimizer.zero_grad(set_to_none=True)  # none left over from gradients computed outside the loop
        for j, batch in enumerate(batches, start=start):
            counts = self._batch_counts(batch)
            group_start = (j // self.grad_accum) * self.grad_accum
            group_size = min(self.grad_accum, n_batches - group_start)
            if self.dist.enabled and j == group_start:
                distributed.seed_rank(self.seed, self.dist.rank, self.step)
            if min(good for good, _ in counts) >= self.min_items:
                synced = j + 1 - group_start >= group_size  # DDP all-reduces in the group's last backward
                self._add(self._forward_backward(batch, objective, group_size, sum(g for g, _ in counts), synced))
                accumulated = True
            else:
                self.skipped_batches += 1
                self.log.write({"kind": "skipped_batch", **self.context, "step": self.step,
                                "good_items": sum(g for g, _ in counts), "bad_items": sum(b for _, b in counts)})
            if j + 1 - group_start < group_size:
                continue  # still accumulating
            self.consumed = j + 1
            if not accumulated:
                continue  # every batch of this group was skipped: no optimizer step
            if self.dist.enabled and not synced:
                distributed.average_gradients(self.module)  # the group's last batch was skipped
            self.opt.step()
            self.step += 1
            accumulated = False
            if after_step():
                return True
        return False

    def _batch_counts(self, batch: dict[str, Any]) -> list[list[int]]:
        """Every rank's (good, bad) item counts, so all ranks take the same skip decision; errors noted."""
        errors = batch["errors"]
        if not self.dist.enabled:
            counts = [[len(batch["path"]), len(errors)]]
        else:
            counts = distributed.gather_ints([len(batch["path"]), len(errors)])
            if any(bad for _, bad in counts):
                errors = [e for errs in distributed.gather_objects(errors) for e in errs]
        note_errors(errors, self.errors, "train", self.log, self.dist, {**self.context, "step": self.step})
        return counts

    def _forward_backward(self, batch: dict[str, Any], objective: Objective, group_size: int, n_global: int,
                          sync: bool) -> dict[str, float]:
        """Forward + backward of this rank's share; returns the loss parts (the loss over the whole global
        batch). `sync`: the last batch of an accumulation group; DDP all-reduces gradients only then."""
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        no_sync = self.dist.enabled and not sync
        with self.model.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[operator]
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                parts = objective.loss(batch)
            loss = parts["loss"]
            value, scaled = float(loss.detach()), loss.float() / group_size
            if self.dist.enabled:
                # DDP averages gradients over ranks; weighting by share size makes that the mean over
                # the global batch even when shares differ (uneven split, decode errors).
                n_local = len(batch["path"])
                value = distributed.all_sum([value * n_local])[0] / n_global  # NaN on any rank reaches all
                scaled = scaled * (n_local * self.dist.world_size / n_global)
            if not math.isfinite(value):
                # fail loudly (on every rank); the last resume state is from before this step
                where = ", ".join(f"{k} {v}" for k, v in {**self.context, "step": self.step}.items())
                detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items() if k != "loss")
                raise FloatingPointError(f"non-finite {self.name + ' ' if self.name else ''}loss {value} at "
                                         f"{where}{'; ' + detail if detail else ''}; lower --lr or check the data")
            self.opt.backward(scaled)
        return {**{k: float(v.detach()) for k, v in parts.items()}, "loss": value}
