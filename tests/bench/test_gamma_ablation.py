"""The GAMMA ablation end to end on a miniature benchmark with 2-step schedules: table, claims, pixel
metrics, reuse of finished runs, report."""

from __future__ import annotations

import json

import pytest
from data.manipulations.helpers import make_base_root

import gendet.bench.gamma_ablation as ga
from gendet.bench.ablations import build_named_report, study_class
from gendet.models.gamma import GammaDetector

RECIPE = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "warmup": 0.0, "weight_decay": 0.0, "max_steps": 2}
SMALL = {**GammaDetector.small_config}


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gamma_ab")
    base = make_base_root(tmp / "base", subsets=("dcgan", "latent_flow"), n={"train": 10, "val": 8})
    out = tmp / "out"
    ab = ga.run_gamma_ablation(base, out, seeds=(0,), recipe=RECIPE, model_config=SMALL, progress=False,
                               manipulated_root=tmp / "manip")
    return base, out, tmp, ab


def test_table_claims_and_pixel_metrics(ablation) -> None:
    _, out, _, ab = ablation
    json.dumps(ab)  # results.json must be able to hold it
    assert list(ab["table"]) == list(ga.VARIANTS)
    assert set(ab["steps"].values()) == {2}
    for variant, row in ab["table"].items():
        assert set(row) == set(ga.METRICS)
        assert row["auc_unseen"]["n"] == 1 and 0 <= row["auc_unseen"]["mean"] <= 1
        assert row["degr_acc"]["mean"] is not None and row["manip_auc"]["mean"] is not None
        pixel = row["pixel_f1"]["mean"]
        assert (pixel is None) == (variant == "w/o seg heads")  # no heads, no pixel numbers
    run = ab["runs"]["full"][0]
    assert set(run["per_subset"]) == {"dcgan", "latent_flow", "manipulated"}
    assert {"inpaint_latent_flow", "inpaint_pixel_flow", "copy_move", "splice", "real", "fully_generated",
            "partial"} <= set(run["per_kind"])
    assert len(ab["claims"]) == len(ga.CLAIMS)
    assert all(c["holds"] in (True, False) and c["p_value"] is None for c in ab["claims"].values())  # one seed
    assert len(ab["sample_masks"]["paths"]) == 4 * ga.SAMPLES_PER_KIND
    assert all((out / "runs" / ga.slug(v) / "seed0" / "sample_masks.npz").is_file()
               for v in ("full", "w/o RCA", "w/o manipulated data"))
    # the variant without manipulated data never saw the manipulated subset in training
    cfg = json.loads((out / "runs" / "w_o_manipulated_data" / "seed0" / "config.json").read_text())
    assert cfg["ablation_key"]["variant"]["manipulated"] is False and cfg["model_config"]["rca"] is True
    full = json.loads((out / "runs" / "full" / "seed0" / "config.json").read_text())
    assert full["n_train"] + full["n_val"] == 2 * cfg["n_train"] + 2 * cfg["n_val"]


def test_finished_runs_are_reused(ablation, monkeypatch) -> None:
    base, out, tmp, ab = ablation

    def boom(*_a, **_k):
        raise AssertionError("a finished run was trained or evaluated again")

    monkeypatch.setattr(ga, "train", boom)
    monkeypatch.setattr(ga, "evaluate", boom)
    again = ga.run_gamma_ablation(base, out, seeds=(0,), recipe=RECIPE, model_config=SMALL, progress=False,
                                  manipulated_root=tmp / "manip")
    assert again["table"] == ab["table"]
    with pytest.raises(AssertionError, match="trained or evaluated again"):  # another schedule is another run
        ga.run_gamma_ablation(base, out, seeds=(0,), recipe={**RECIPE, "lr": 2e-3}, model_config=SMALL,
                              progress=False, manipulated_root=tmp / "manip")


def test_report(ablation) -> None:
    _, out, _, ab = ablation
    html, md = build_named_report("gamma", "tiny", {"ablation": ab, "command": "gendet bench --ablation gamma",
                                                    "timings": {"total_s": 1.0}}, out)
    text = html.read_text()
    assert "GAMMA ablation" in text and "w/o manipulated data" in text and text.count("<img") >= 2
    assert "pixel F1" in md.read_text()
    kinds = {(r["variant"], r["kind"]) for r in ga.per_kind_rows(ab)}
    assert ("full", "splice") in kinds and not any(v == "w/o seg heads" for v, _ in kinds)


def test_registered_and_refuses_unknown_recipe(tmp_path) -> None:
    assert study_class("gamma", "tiny") is ga.GammaTinyStudy
    from gendet.bench.study import AblationOptions

    with pytest.raises(ValueError, match="unknown --recipe"):
        ga.GammaTinyStudy.from_options(tmp_path, tmp_path, AblationOptions(recipe="nope"))
