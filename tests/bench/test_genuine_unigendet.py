"""UniGenDet's genuine-preset ablation on a small manifest: every variant, both stages, KID, claims, CLI."""

from __future__ import annotations

import json

import pytest

from gendet.bench.genuine_unigendet import VARIANTS, run_genuine_unigendet
from gendet.cli.main import main
from gendet.evaluation.fidelity import get_extractor

SMALL = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False, "grid": 2, "hidden": 32, "depth": 2,
         "heads": 2}
PROBE = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False}


@pytest.fixture(scope="module")
def study(genuine_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return run_genuine_unigendet(genuine_manifest, out, seeds=(0, 1), recipe_name="smoke", cache_dir=out / "cache",
                                 progress=False, extractor=get_extractor("tiny"), model_config=SMALL,
                                 probe_config=PROBE)


def test_every_variant_has_detection_and_generation_per_seed(study) -> None:
    assert set(study["table"]) == {*VARIANTS, "probe (baseline)"}
    for name in VARIANTS:
        runs = study["runs"][name]
        assert [r["seed"] for r in runs] == [0, 1]
        for r in runs:
            assert set(r["per_group"]) == {"gen_a", "gen_b", "gen_c"}
            assert 0.0 <= r["logo_mean_auc"] <= 1.0 and r["kid"] is not None
    assert study["table"]["probe (baseline)"]["logo_mean_auc"]["n"] == 2
    # DIGA trains only the generation side: "w/o DIGA" detects with full's stage-1 model
    assert study["runs"]["full"][0]["per_group"] == study["runs"]["w/o DIGA"][0]["per_group"]


def test_claims_carry_welch_p_values(study) -> None:
    claims = study["claims"]
    assert "DIGA lowers KID by >= 10% relative vs GDUF alone" in claims
    for c in claims.values():
        assert c["holds"] in (True, False) and "p_value" in c
    assert study["autoencoder"]["n_photos"] > 0


def test_cli_runs_the_genuine_study_and_writes_a_report(genuine_manifest, tmp_path, capsys, monkeypatch) -> None:
    import gendet.bench.genuine_unigendet as mod

    real = mod.run_genuine_unigendet
    monkeypatch.setattr(mod, "run_genuine_unigendet", lambda *a, **k: real(
        *a, **k, extractor=get_extractor("tiny"), model_config=SMALL, probe_config=PROBE))
    out = tmp_path / "b"
    code = main(["bench", "--preset", "genuine", "--data", str(genuine_manifest), "--out", str(out), "--ablation",
                 "unigendet", "--seeds", "0", "--recipe", "smoke", "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["study"] == "unigendet" and res["ablation"]["model"] == "unigendet_lite"
    assert "genuine preset" in (out / "report.html").read_text()
    assert "DIGA lowers KID" in capsys.readouterr().out
