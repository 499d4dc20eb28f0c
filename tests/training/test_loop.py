"""The one step loop on a toy objective: accumulation, skipped batches, bad files, non-finite losses, state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gendet.training.distributed import DistInfo, NullTrainLog
from gendet.training.loop import StepLoop
from gendet.training.optim import OptimizerStep


class MeanSquare:
    """loss = mean((w * x)^2) over the batch's items, with a second part to log."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        y = self.model(batch["x"])
        return {"loss": (y ** 2).mean(), "abs": y.abs().mean().detach()}


def _batch(n: int, bad: int = 0, value: float = 1.0) -> dict:
    return {"x": torch.full((n, 1), value), "path": [f"img{i}" for i in range(n)],
            "errors": [(f"bad{i}.png", "truncated") for i in range(bad)]}


def _loop(accum: int = 1, min_items: int = 1, name: str = "") -> tuple[StepLoop, nn.Linear]:
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    opt = OptimizerStep(model.parameters(), 0.1, 0.0, total_steps=100, warmup=0.0)
    return StepLoop(model, model, opt, torch.device("cpu"), None, DistInfo(), NullTrainLog(), 0, accum, min_items,
                    name), model


def test_accumulation_groups_make_one_step_each_and_the_last_group_may_be_short() -> None:
    loop, _ = _loop(accum=2)
    steps: list[int] = []

    def after() -> bool:
        steps.append(loop.step)
        return False

    stopped = loop.run([_batch(2) for _ in range(5)], 5, 0, MeanSquare(loop.model), after)
    assert not stopped and steps == [1, 2, 3] and loop.consumed == 5  # groups of 2, 2, 1
    assert loop.total_means()["loss"] > 0 and set(loop.window_means()) == {"loss", "abs"}


def test_after_step_stops_the_loop() -> None:
    loop, _ = _loop()
    assert loop.run([_batch(2) for _ in range(4)], 4, 0, MeanSquare(loop.model), lambda: loop.step >= 2)
    assert loop.step == 2 and loop.consumed == 2


def test_a_batch_with_too_few_good_items_is_skipped_and_bad_files_are_noted_once() -> None:
    loop, model = _loop(min_items=2)
    before = model.weight.detach().clone()
    loop.run([_batch(1, bad=1), _batch(1, bad=1)], 2, 0, MeanSquare(model), lambda: False)
    assert loop.step == 0 and loop.skipped_batches == 2 and loop.errors == {"bad0.png": "truncated"}
    assert torch.equal(model.weight, before)
    loop.run([_batch(3)], 1, 0, MeanSquare(model), lambda: False)
    assert loop.step == 1 and not torch.equal(model.weight, before)


def test_a_non_finite_loss_fails_loudly_with_the_objective_name() -> None:
    loop, _ = _loop(name="toy")
    loop.context = {"epoch": 3}
    with pytest.raises(FloatingPointError, match="non-finite toy loss nan at epoch 3, step 0; abs=nan"):
        loop.run([_batch(2, value=float("nan"))], 1, 0, MeanSquare(loop.model), lambda: False)


def test_progress_round_trips_through_the_state() -> None:
    loop, _ = _loop()
    loop.run([_batch(2, bad=1) for _ in range(3)], 3, 0, MeanSquare(loop.model), lambda: False)
    other, _ = _loop()
    other.load_state_dict(loop.state_dict())
    assert other.state_dict() == loop.state_dict() and other.step == 3 and other.errors == loop.errors
