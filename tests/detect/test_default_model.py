"""The shipped models load strictly and match their model cards; `--model NAME` picks one."""

from __future__ import annotations

import csv
import json

from gendet.cli.main import main
from gendet.detect import default_checkpoint_dir, load_scan_model
from gendet.detect.shipped import SHIPPED, shipped_dir, shipped_models


def test_shipped_default_model_loads_and_its_card_has_the_genuine_figures():
    d = default_checkpoint_dir()
    m = load_scan_model(None)
    card = json.loads((d / "card.json").read_text())
    assert m.config["model"] == "probe" and m.preprocess.crops == 4 and not m.preprocess.resize
    assert m.threshold == card["threshold"] and m.threshold_source.startswith("fpr")
    assert set(card["evaluation"]["metrics"]) >= {"none", "jpeg_30", "blur_5", "resize_64"}
    assert card["evaluation"]["metrics"]["none"]["auc"] > 0.9
    groups = card["evaluation"]["groups"]
    assert {"sd1", "sdxl", "gan", "dit-t2i", "edited"} <= set(groups)
    assert card["evaluation"]["real_sets"]["bsds500"]["n"] >= 20
    logo = card["leave_one_group_out"]
    assert logo["seed"] == 0 and len(logo["groups"]) == 8 and logo["mean_auc"] > 0.9
    md = (d / "MODEL_CARD.md").read_text()
    assert "leave one group out" in md and "TRAINING_SOURCES.csv" in md
    # the sources list names every training file with its sha256, so the model can be rebuilt
    rows = list(csv.DictReader(open(d / "TRAINING_SOURCES.csv")))
    assert len(rows) == card["training_data"]["train_files"] and all(len(r["sha256"]) == 64 for r in rows)
    assert all(r["split"] == "train" for r in rows)


def test_the_earlier_model_ships_as_fast_with_its_card():
    m = load_scan_model("fast")
    assert m.config["model"] == "spec" and m.preprocess.size == 64
    assert json.loads((shipped_dir("fast") / "card.json").read_text())["name"] == "gendet-fast"


def test_gendet_models_lists_the_shipped_models(capsys):
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in listing["shipped"]} == set(SHIPPED)
    assert {"probe", "lite"} <= {d["name"] for d in listing["detectors"]}
    assert [m["detector"] for m in shipped_models() if m["name"] == "default"] == ["probe"]
