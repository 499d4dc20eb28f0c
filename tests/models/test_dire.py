"""DIRE: the single-scale residual baseline shares HRR's reconstruction code and cache."""

from __future__ import annotations

import json

import pytest
import torch

from gendet.models.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from gendet.models.hrr.cache import shared_cache
from gendet.models.hrr.retrospection import ReconstructorMismatch

from .helpers import random_batch, small_detector


def test_dire_is_one_scale_with_a_linear_bce_head() -> None:
    det = small_detector("dire")
    assert det.config["scales"] == [1.0] and det.config["refine"] == "none"
    assert det.refinement_report() is None
    batch = random_batch(det)
    out = det(batch)
    assert out["logit"].shape == (4,) and "kl" not in out
    assert det.residuals(batch["image"]).shape == (4, 1, 3, 64, 64)
    parts = det.loss(batch, out)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out["logit"], batch["label"].float())
    assert torch.allclose(parts["loss"], expected) and set(parts) == {"loss", "bce"}


def test_dire_and_hrr_share_the_full_scale_reconstruction() -> None:
    dire, hrr = small_detector("dire"), small_detector("hrr")  # same t and steps; hrr adds scale 1/2
    x = random_batch(dire, n=3, seed=11)["image"]
    stats = shared_cache().stats
    with torch.no_grad():
        dire(random_batch(dire, n=3, seed=11))
        before = (stats.hits, stats.misses)
        hrr({"image": x})
    assert stats.hits - before[0] == 3  # scale 1: computed for dire, reused by hrr
    assert stats.misses - before[1] == 3  # scale 1/2: new


def test_dire_checkpoint_refuses_other_reconstructor_weights(tmp_path) -> None:
    save_checkpoint(tmp_path, small_detector("dire"), {})
    cfg = json.loads((tmp_path / CONFIG_FILE).read_text())
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.config["reconstructor_sha256"] == cfg["model_config"]["reconstructor_sha256"]
    cfg["model_config"]["reconstructor_sha256"] = "f" * 64
    (tmp_path / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ReconstructorMismatch, match="retrain"):
        load_checkpoint(tmp_path)
