"""HRR's genuine-preset ablation on a small manifest: DIRE / HRR / refinement / label noise, claims, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gendet.bench.genuine_hrr import flip_labels, run_genuine_hrr
from gendet.cli.main import main

SMALL = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False, "steps": 4}
PROBE = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False}


@pytest.fixture(scope="module")
def study(genuine_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("hrr")
    return run_genuine_hrr(genuine_manifest, out, seeds=(0, 1), recipe_name="smoke", cache_dir=out / "cache",
                           progress=False, model_config=SMALL, probe_config=PROBE)


def test_every_variant_is_measured_per_seed(study) -> None:
    assert set(study["table"]) == {"dire", "hrr w/o refinement", "hrr", "hrr (squared loss)",
                                   "hrr, 20% label noise", "hrr (squared loss), 20% label noise", "probe (baseline)"}
    for rs in study["runs"].values():
        assert [r["seed"] for r in rs] == [0, 1]
        assert all(set(r["per_group"]) == {"gen_a", "gen_b", "gen_c"} for r in rs)
    assert study["runs"]["hrr"][0]["n_kept"] is not None and study["runs"]["dire"][0]["n_kept"] is None
    rec = study["reconstructor"]["val_reconstruction_error"]
    assert rec["real"]["n"] > 0 and rec["generated"]["mean_abs_error"] > 0
    assert "correntropy beats the squared loss at 20% label noise (AUC)" in study["claims"]


def test_flip_labels_flips_the_stated_share_reproducibly() -> None:
    y = np.array([0, 1] * 50)
    a, b = flip_labels(y, 0.2, 3), flip_labels(y, 0.2, 3)
    assert (a != y).sum() == 20 and (a == b).all() and (y == np.array([0, 1] * 50)).all()


def test_cli_runs_the_genuine_hrr_study(genuine_manifest, tmp_path, monkeypatch) -> None:
    import gendet.bench.genuine_hrr as mod

    real = mod.run_genuine_hrr
    monkeypatch.setattr(mod, "run_genuine_hrr", lambda *a, **k: real(*a, **k, model_config=SMALL, probe_config=PROBE))
    out = tmp_path / "b"
    assert main(["bench", "--preset", "genuine", "--data", str(genuine_manifest), "--out", str(out), "--ablation",
                 "hrr", "--seeds", "0", "--recipe", "smoke", "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 0
    assert json.loads((out / "results.json").read_text())["ablation"]["model"] == "hrr_lite"
