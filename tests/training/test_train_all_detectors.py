"""Every registered detector trains one epoch on tiny data (new registry entries are picked up)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from gendet.data.layouts import read_samples, select_split
from gendet.evaluation.inference import predict
from gendet.models import create_detector, get_detector_class, list_detectors
from gendet.models.checkpoint import load_checkpoint, read_config
from gendet.training import TrainConfig, train
from gendet.training.state import seed_everything

# Extra test-only config for a detector beyond its own `small_config` (none needed so far).
TEST_OVERRIDES: dict[str, dict[str, Any]] = {}


def tiny_config(name: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"image_size": 32}
    cfg.update(getattr(get_detector_class(name), "small_config", {}))
    cfg.update(TEST_OVERRIDES.get(name, {}))
    return cfg


@pytest.mark.parametrize("name", list_detectors())
def test_detector_trains_one_epoch(name: str, genimage_root: Path, tmp_path: Path) -> None:
    samples = select_split(read_samples(genimage_root, "auto", "gen_a"), "train")
    real = [s for s in samples if s.label == 0]
    fake = [s for s in samples if s.label == 1]
    train_s, val_s = real[:4] + fake[:4], real[4:6] + fake[4:6]

    seed_everything(0)
    det = create_detector(name, **tiny_config(name))
    before = {k: v.detach().clone() for k, v in det.named_parameters()}
    pp = det.preprocess("jpeg")
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, warmup=0, seed=0, progress=False, log_every=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM CLIP backbone.*")  # univfd's test backbone
        summary = train(det, train_s, val_s, pp, cfg, tmp_path / name)

    assert summary["global_step"] == 2 and summary["stop_reason"] == "completed"
    assert summary["decode_errors"]["train"] == 0
    assert summary["val_metrics"]["n"] == 4 and summary["threshold_val"] is not None
    assert all(math.isfinite(loss) for loss in _logged_losses(tmp_path / name))
    params = dict(det.named_parameters())
    trainable = [k for k, p in params.items() if p.requires_grad]
    assert trainable, "no trainable parameters"
    assert any(not torch.equal(before[k], params[k].detach()) for k in trainable), "training changed nothing"
    frozen = [k for k, p in params.items() if not p.requires_grad]
    assert all(torch.equal(before[k], params[k].detach()) for k in frozen), "a frozen parameter moved"

    # the checkpoint reloads strictly and scores the validation images as the trained model does
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM CLIP backbone.*")
        loaded, config = load_checkpoint(tmp_path / name)
        assert config["model"] == name and read_config(tmp_path / name)["n_train"] == 8
        a, b = predict(det, val_s, pp), predict(loaded, val_s, pp)
    assert torch.allclose(torch.from_numpy(a.scores), torch.from_numpy(b.scores), atol=1e-6)


def _logged_losses(out: Path) -> list[float]:
    import json

    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 2
    return losses
