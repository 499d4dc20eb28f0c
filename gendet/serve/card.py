"""GET /v1/model: the served model's card (name, version, training data, metrics, threshold).

The checkpoint's `card.json` (written by `gendet train` for the shipped model) is the source when it
exists; any other checkpoint gets what its config.json records, and says that no metrics were stored.
"""

from __future__ import annotations

import json
from typing import Any

from gendet.bench.model_card import CARD_JSON
from gendet.detect.model import ScanModel
from gendet.version import VERSION


def read_card(model: ScanModel) -> dict[str, Any]:
    """The checkpoint's card.json, or {} when it has none or it is unreadable."""
    path = model.checkpoint / CARD_JSON
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def model_card(model: ScanModel) -> dict[str, Any]:
    """The JSON body of GET /v1/model (computed once at start-up)."""
    card, cfg = read_card(model), model.config
    evaluation = card.get("evaluation")
    training = card.get("training_data") or {
        key: cfg.get(key) for key in ("data_root", "subset", "layout", "seed") if cfg.get(key) is not None
    } or None
    notes = [] if evaluation else [f"the checkpoint has no {CARD_JSON}: no evaluation metrics were recorded with it"]
    return {
        "name": card.get("name") or cfg.get("name") or model.name,
        "model": model.name,
        "version": model.version,
        "gendet_version": card.get("gendet_version") or cfg.get("gendet_version") or VERSION,
        "checkpoint": model.checkpoint.name,
        "parameters": card.get("parameters", model.detector.num_parameters),
        "threshold": model.threshold,
        "threshold_source": model.threshold_source,
        "labels": "score = P(generated); label 'fake' iff score >= threshold, else 'real'",
        "preprocess": model.preprocess.to_dict(),
        "training_data": training,
        "metrics": evaluation,
        "limits": card.get("limits", []),
        "command": card.get("command") or cfg.get("command"),
        "notes": notes,
    }
