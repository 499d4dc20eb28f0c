"""Model cards are computed from the checkpoint on held-out data, not written by hand."""

from __future__ import annotations

import json

from gendet.bench.model_card import CARD_JSON, CARD_MD, build_model_card
from gendet.data.layouts import read_samples
from gendet.models import create_detector
from gendet.models.checkpoint import save_checkpoint


def test_model_card_has_per_subset_and_degradation_metrics(genimage_root, tmp_path):
    det = create_detector("tiny_cnn")
    pp = det.preprocess()
    save_checkpoint(tmp_path, det, {"preprocess": pp.to_dict(), "align": pp.align, "threshold": 0.5,
                                    "threshold_source": "fixed", "seed": 0})
    val = [s for s in read_samples(genimage_root) if s.split == "val"]
    card = build_model_card(tmp_path, val, "test-card", {"subsets": ["gen_a", "gen_b"]}, "gendet train ...",
                            ["never saw a commercial generator"])
    metrics = card["evaluation"]["metrics"]
    assert list(metrics) == ["none", "resize_112", "resize_64", "jpeg_65", "jpeg_30", "blur_3", "blur_5"]
    assert set(metrics["none"]["subsets"]) == {"gen_a", "gen_b"}
    assert metrics["none"]["n"] == len(val)
    assert json.loads((tmp_path / CARD_JSON).read_text())["name"] == "test-card"
    md = (tmp_path / CARD_MD).read_text()
    assert "| gen_a |" in md and "jpeg_30" in md and "never saw a commercial generator" in md
