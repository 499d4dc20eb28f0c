"""The trainer: it learns, it schedules, it keeps the best weights, it survives bad files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gendet.data.layouts import read_samples, select_split, split_holdout
from gendet.evaluation.inference import predict
from gendet.evaluation.metrics import compute_metrics
from gendet.models import create_detector
from gendet.models.checkpoint import load_checkpoint, read_config
from gendet.training import TrainConfig, train
from gendet.training.optim import cosine_with_warmup
from gendet.training.state import seed_everything
from gendet.training.trainer import _better, epoch_batches


def _log_rows(out: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if kind is None or r["kind"] == kind]


def _tiny(**cfg) -> torch.nn.Module:
    seed_everything(0)
    return create_detector("tiny_cnn", **cfg)


def test_tiny_cnn_learns_on_the_fixture(make_genimage, tmp_path: Path) -> None:
    # gen_b fakes carry a faint period-4 pattern; tiny_cnn sees it at full resolution
    # (48 px, crop only). Reported: held-out AUC and AUC on the untouched val split.
    root = make_genimage(tmp_path / "data", generators=("gen_b",), n_train=20, n_val=10)
    samples = read_samples(root, "auto", "gen_b")
    train_s, val_s = split_holdout(select_split(samples, "train"), 0.25, seed=0)
    test_s = select_split(samples, "eval")
    det = _tiny(image_size=48, resize=False)
    pp = det.preprocess("jpeg")
    cfg = TrainConfig(epochs=20, batch_size=8, lr=1e-2, patience=0, seed=0, progress=False)
    summary = train(det, train_s, val_s, pp, cfg, tmp_path / "run")

    assert summary["val_metrics"]["auc"] >= 0.8
    preds = predict(det, test_s, pp)
    test_auc = compute_metrics(preds.labels, preds.scores, 0.5, "fixed")["auc"]
    assert test_auc >= 0.8, f"test AUC {test_auc}"
    losses = [r["loss"] for r in _log_rows(tmp_path / "run", "val")]
    assert len(losses) == 20 and np.mean(losses[-5:]) < losses[0]


def test_epoch_batches_are_seeded_permutations() -> None:
    a = epoch_batches(23, 5, seed=3, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(23))
    assert a == epoch_batches(23, 5, seed=3, epoch=1)
    assert a != epoch_batches(23, 5, seed=3, epoch=2)
    assert a != epoch_batches(23, 5, seed=4, epoch=1)
    # a trailing single sample joins the previous batch (BatchNorm cannot train on one sample)
    assert [len(b) for b in epoch_batches(11, 5, 0, 0)] == [5, 6]


def test_warmup_then_cosine() -> None:
    f = cosine_with_warmup(total_steps=100, warmup=10)
    warm = [f(s) for s in range(10)]
    assert warm == sorted(warm) and warm[0] < 0.2 and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5, abs=1e-9)
    assert f(99) < 0.01 and f(100) == pytest.approx(0.0)


def test_better_prefers_auc_then_lower_loss() -> None:
    assert _better(0.9, 0.5, 0.8, 0.1)
    assert not _better(0.7, 0.1, 0.8, 0.5)
    assert _better(0.8, 0.4, 0.8, 0.5) and not _better(0.8, 0.6, 0.8, 0.5)
    assert _better(None, 0.4, None, 0.5) and not _better(None, 0.1, 0.8, 0.5)


def test_best_weights_and_early_stopping_follow_the_log(genimage_root: Path, tmp_path: Path) -> None:
    samples = select_split(read_samples(genimage_root, "auto", "gen_a"), "train")
    train_s, val_s = split_holdout(samples, 0.25, seed=0)
    det = _tiny()
    pp = det.preprocess("jpeg")
    cfg = TrainConfig(epochs=8, batch_size=6, lr=5e-3, patience=2, seed=0, progress=False)
    out = tmp_path / "run"
    summary = train(det, train_s, val_s, pp, cfg, out)

    rows = _log_rows(out, "val")
    # replay the early-stopping rule on the logged validation results
    best, bad, stop_at = None, 0, len(rows)
    for i, r in enumerate(rows):
        if best is None or _better(r["val_auc"], r["val_loss"], best["val_auc"], best["val_loss"]):
            best, bad = r, 0
        else:
            bad += 1
        assert r["best"] == (bad == 0)
        if bad >= cfg.patience:
            stop_at = i + 1
            break
    assert len(rows) == stop_at == summary["epochs_run"]
    assert summary["stop_reason"] == ("early_stop" if stop_at < cfg.epochs else "completed")
    assert summary["best_epoch"] == best["epoch"]

    # the checkpoint holds the best epoch's weights, not the last epoch's
    loaded, config = load_checkpoint(out)
    preds = predict(loaded, val_s, pp)
    assert compute_metrics(preds.labels, preds.scores, 0.5, "fixed")["auc"] == pytest.approx(best["val_auc"])
    assert config["val_metrics"]["auc"] == pytest.approx(best["val_auc"])


def test_gradient_accumulation_step_count(genimage_root: Path, tmp_path: Path) -> None:
    samples = select_split(read_samples(genimage_root, "auto", "gen_a"), "train")  # 24 samples
    det = _tiny()
    cfg = TrainConfig(epochs=2, batch_size=4, grad_accum=4, seed=0, progress=False, log_every=1)
    summary = train(det, samples, [], det.preprocess("jpeg"), cfg, tmp_path / "run")
    # 6 batches per epoch, 4 per step -> 2 steps per epoch (the last one with 2 batches)
    assert summary["global_step"] == 4
    assert [r["step"] for r in _log_rows(tmp_path / "run", "train")] == [1, 2, 3, 4]
    # no validation split: no best epoch, no fitted threshold, the last weights are kept
    assert summary["best_epoch"] is None and summary["threshold_val"] is None
    assert summary["threshold"] == 0.5 and summary["val_metrics"] is None


@pytest.mark.parametrize("mode", ["fixed", "val"])
def test_threshold_modes(genimage_root: Path, tmp_path: Path, mode: str) -> None:
    samples = select_split(read_samples(genimage_root, "auto", "gen_a"), "train")
    train_s, val_s = split_holdout(samples, 0.25, seed=0)
    det = _tiny()
    cfg = TrainConfig(epochs=1, batch_size=8, seed=0, threshold_mode=mode, progress=False)
    train(det, train_s, val_s, det.preprocess("jpeg"), cfg, tmp_path / "run")
    config = read_config(tmp_path / "run")
    assert 0.0 <= config["threshold_val"] <= 1.0
    if mode == "fixed":
        assert (config["threshold"], config["threshold_source"]) == (0.5, "fixed")
    else:
        assert (config["threshold"], config["threshold_source"]) == (config["threshold_val"], "val")
    assert config["val_metrics"]["threshold"] == config["threshold"]


def test_bad_files_are_skipped_and_reported(make_genimage, tmp_path: Path) -> None:
    root = make_genimage(tmp_path / "data", generators=("gen_a",), n_train=8, n_val=2)
    bad = {
        root / "gen_a/train/ai/garbage.png": b"this is not an image at all",
        root / "gen_a/train/nature/empty.jpg": b"",
        root / "gen_a/train/nature/truncated.jpg": (root / "gen_a/train/nature/real_000.JPEG").read_bytes()[:300],
    }
    for path, data in bad.items():
        path.write_bytes(data)
    samples = select_split(read_samples(root, "auto", "gen_a"), "train")
    train_s, val_s = split_holdout(samples, 0.2, seed=0)
    det = _tiny()
    cfg = TrainConfig(epochs=3, batch_size=4, seed=0, patience=0, progress=False)
    summary = train(det, train_s, val_s, det.preprocess("jpeg"), cfg, tmp_path / "run")

    assert summary["stop_reason"] == "completed" and summary["global_step"] > 0
    errors = summary["decode_errors"]
    assert errors["train"] + errors["val"] == 3
    assert sorted(p for p, _ in errors["files"]) == sorted(str(p) for p in bad)
    rows = _log_rows(tmp_path / "run", "decode_error")
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in bad)  # once each, not once per epoch
    assert all(r["reason"] for r in rows)
    assert read_config(tmp_path / "run")["decode_errors"]["files"] == [list(x) for x in errors["files"]]


def test_non_finite_loss_fails_loudly(genimage_root: Path, tmp_path: Path) -> None:
    samples = select_split(read_samples(genimage_root, "auto", "gen_a"), "train")
    det = _tiny()
    with torch.no_grad():
        det.head.bias.fill_(math.nan)
    cfg = TrainConfig(epochs=1, batch_size=8, seed=0, progress=False)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        train(det, samples, [], det.preprocess("jpeg"), cfg, tmp_path / "run")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError):
        TrainConfig(threshold_mode="test")
    with pytest.raises(ValueError):
        TrainConfig(holdout=1.0)
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
