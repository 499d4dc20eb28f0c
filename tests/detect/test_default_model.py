"""The detector shipped in the package loads strictly and matches its model card."""

from __future__ import annotations

import json

from gendet.detect import default_checkpoint_dir, load_scan_model


def test_shipped_default_model_loads_and_has_a_card():
    d = default_checkpoint_dir()
    m = load_scan_model(None)
    card = json.loads((d / "card.json").read_text())
    assert m.threshold == card["threshold"] and m.threshold_source == "val"
    assert card["evaluation"]["metrics"]["none"]["n"] > 0
    assert set(card["evaluation"]["metrics"]) >= {"none", "jpeg_30", "blur_5", "resize_64"}
    assert (d / "MODEL_CARD.md").is_file()
