"""`gendet train --model probe`: the head solver on cached features, its thresholds, and the result scanning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gendet.cli.main import main
from gendet.detect import load_scan_model
from gendet.models.checkpoint import read_config

SMALL = ["--set", "image_size=32", "--set", "taps=[1]", "--set", "pretrained=false"]


def _train(manifest: Path, out: Path, cache: Path, *extra: str) -> int:
    return main(["train", "--model", "probe", "--data", str(manifest), "--out", str(out), "--cache-dir", str(cache),
                 "--no-progress", *SMALL, *extra])


def test_head_solver_writes_a_checkpoint_that_scans(genuine_manifest, tmp_path, capsys) -> None:
    out = tmp_path / "probe"
    assert _train(genuine_manifest, out, tmp_path / "c", "--threshold", "fpr", "--target-fpr", "0.05") == 0
    cfg = read_config(out)
    assert cfg["solver"].startswith("head") and cfg["threshold_source"] == "fpr 0.05"
    assert cfg["n_train"] == cfg["n_val"] == 20 + 18  # fpr: the head on all training data, out-of-fold threshold
    m = load_scan_model(out)
    assert m.threshold == cfg["threshold"] and m.preprocess.crops == 4
    rc = main(["detect", str(genuine_manifest.parent / "gen_a"), "--checkpoint", str(out), "--output",
               str(tmp_path / "r.jsonl"), "--workers", "0"])
    recs = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rc == 0 and len(recs) == 8 and all(0.0 <= r["score"] <= 1.0 for r in recs)
    # a second fit reads every feature from the cache
    assert _train(genuine_manifest, tmp_path / "again", tmp_path / "c", "--threshold", "val") == 0
    assert "features computed 0" in capsys.readouterr().out


def test_sgd_solver_trains_the_head_with_the_epoch_trainer(genuine_manifest, tmp_path) -> None:
    out = tmp_path / "sgd"
    assert _train(genuine_manifest, out, tmp_path / "c", "--solver", "sgd", "--set", "crops=1",
                  "--epochs", "1", "--batch-size", "8") == 0
    assert "solver" not in read_config(out) and (out / "train_log.csv").is_file()


@pytest.mark.parametrize("extra", [["--solver", "sgd", "--threshold", "fpr"], ["--target-fpr", "1.5"]])
def test_usage_errors(genuine_manifest, tmp_path, extra) -> None:
    assert _train(genuine_manifest, tmp_path / "x", tmp_path / "c", "--threshold", "fpr", *extra) == 2


def test_head_solver_needs_a_probe(genuine_manifest, tmp_path) -> None:
    assert main(["train", "--model", "tiny_cnn", "--solver", "head", "--data", str(genuine_manifest),
                 "--out", str(tmp_path / "x")]) == 2


def test_default_preset_needs_a_manifest(tmp_path) -> None:
    assert main(["train", "--preset", "default", "--out", str(tmp_path / "x")]) == 2


def test_a_seed_system_trains_with_the_head_solver_and_scans(genuine_manifest, tmp_path) -> None:
    """hrr_lite: its frozen autoencoder is trained on the training photos, the head on cached features; the
    checkpoint holds both and scans like any other."""
    out = tmp_path / "hrr"
    small = [*SMALL, "--set", "ae_channels=[8,16,16]", "--set", "ae_steps=2", "--set", "steps=4"]
    assert main(["train", "--model", "hrr_lite", "--data", str(genuine_manifest), "--out", str(out), "--cache-dir",
                 str(tmp_path / "c"), "--no-progress", "--threshold", "val", *small]) == 0
    cfg = read_config(out)
    assert cfg["solver"].startswith("head") and cfg["model_config"]["autoencoder_sha256"]
    rc = main(["detect", str(genuine_manifest.parent / "gen_a"), "--checkpoint", str(out), "--output",
               str(tmp_path / "r.jsonl"), "--workers", "0"])
    recs = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rc == 0 and len(recs) == 8 and all(0.0 <= r["score"] <= 1.0 for r in recs)
