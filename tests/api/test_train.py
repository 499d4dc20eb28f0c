"""gendet.train: the CLI's solvers from Python, typed results, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gendet
from gendet.api import TrainResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_epoch_trainer_run(genimage_root: Path, tmp_path: Path) -> None:
    run = gendet.train("tiny_cnn", genimage_root, tmp_path / "ckpt", subset="gen_a", epochs=1, batch_size=8,
                       holdout=0.25, threshold="val")
    assert isinstance(run, TrainResult) and run.solver == "sgd" and run.model == "tiny_cnn"
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["model"] == "tiny_cnn" and cfg["subset"] == "gen_a" and cfg["epochs"] == 1
    assert (run.threshold, run.threshold_source) == (cfg["threshold"], "val")
    assert run.n_train + run.n_val == 24 and run.val_auc == cfg["val_metrics"]["auc"]
    assert run.decode_errors == []
    v = run.load(device="cpu").predict(next((genimage_root / "gen_a" / "val" / "ai").iterdir()))
    assert v.error is None and v.threshold == pytest.approx(run.threshold)


def test_refusals(genimage_root: Path, tmp_path: Path) -> None:
    kw = {"subset": "gen_a", "holdout": 0.25}
    with pytest.raises(TypeError, match="unknown epoch-trainer settings"):
        gendet.train("tiny_cnn", genimage_root, tmp_path / "a", epoch=1, **kw)
    with pytest.raises(ValueError, match="solver 'head'"):
        gendet.train("tiny_cnn", genimage_root, tmp_path / "b", solver="head", **kw)
    with pytest.raises(ValueError, match="head solver only"):
        gendet.train("tiny_cnn", genimage_root, tmp_path / "c", threshold="fpr", **kw)
    with pytest.raises(ValueError, match="gendet train --model unigendet"):
        gendet.train("unigendet", genimage_root, tmp_path / "d", **kw)
    with pytest.raises(FileNotFoundError):
        gendet.train("tiny_cnn", tmp_path / "missing", tmp_path / "e")
    gendet.train("tiny_cnn", genimage_root, tmp_path / "f", epochs=1, batch_size=8, **kw)
    with pytest.raises(ValueError, match="already holds a training run"):
        gendet.train("tiny_cnn", genimage_root, tmp_path / "f", epochs=1, **kw)
    again = gendet.train("tiny_cnn", genimage_root, tmp_path / "f", epochs=1, batch_size=8, overwrite=True, **kw)
    assert again.checkpoint == tmp_path / "f"
