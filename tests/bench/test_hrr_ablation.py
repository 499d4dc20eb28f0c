"""The HRR ablation runner and report on a tiny tree, and hrr/dire in the bench matrix (`--detectors hrr,dire`)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gendet.bench import presets
from gendet.bench.ablations import build_named_report, study_class
from gendet.bench.hrr_ablation import RECIPES, HRRTinyStudy, inject_label_noise, run_ablation, variants_for
from gendet.cli.main import main
from gendet.data.layouts import read_samples
from gendet.models.hrr.cache import shared_cache

SMALL = {"image_size": 32, "width": 4, "channels": 8}
RECIPE = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "t": 0.15, "steps": 1, "test_sizes": [24],
          "label_noise": [0.2], "degradations": ["jpeg_30"], "max_per_class": None}


def test_label_noise_flips_the_asked_share_deterministically(genimage_root) -> None:
    samples = [s for s in read_samples(genimage_root) if s.split == "train"]
    noisy, n = inject_label_noise(samples, 0.2, seed=3)
    assert n == round(0.2 * len(samples))
    assert sum(a.label != b.label for a, b in zip(samples, noisy, strict=True)) == n
    assert inject_label_noise(samples, 0.2, seed=3)[0] == noisy
    assert inject_label_noise(samples, 0.2, seed=4)[0] != noisy
    assert inject_label_noise(samples, 0.0, seed=3) == (samples, 0)


def test_variants_cover_the_study() -> None:
    names = list(variants_for(RECIPES["tiny"]))
    assert names[:4] == ["dire", "hrr w/o refinement", "hrr", "hrr (squared loss)"]
    assert "hrr, 10% label noise" in names and "hrr (squared loss), 20% label noise" in names
    assert study_class("hrr", "tiny") is HRRTinyStudy


def test_runner_and_report_on_a_tiny_tree(genimage_root, tmp_path) -> None:
    out = tmp_path / "ablation"
    res = run_ablation(genimage_root, out, seeds=(0,), recipe_name="test", train_subset="gen_a",
                       progress=False, recipe=RECIPE, model_config=SMALL)
    assert set(res["table"]) == set(variants_for(RECIPE))
    hrr = res["runs"]["hrr"][0]
    assert set(hrr["per_subset"]) == {"gen_a", "gen_b"} and set(hrr["task2"]) == {"none", "jpeg_30"}
    assert set(hrr["size"]) == {"24"} and hrr["n_components"] == 3 * (8 + 3) + 8 and 0 < hrr["n_kept"] <= 41
    assert res["runs"]["dire"][0].get("n_kept") is None and "size" not in res["runs"]["hrr (squared loss)"][0]
    assert res["runs"]["hrr, 20% label noise"][0]["labels_flipped"] > 0
    assert all(0.0 <= r["auc_mean"] <= 1.0 for rs in res["runs"].values() for r in rs)
    claims = res["claims"]
    assert "correntropy beats the squared loss with 20% label noise (AUC)" in claims
    assert all(c["holds"] in (True, False, None) for c in claims.values())
    assert res["reconstruction_cache"]["misses"] > 0

    # a rerun reuses every checkpoint and every reconstruction: no reconstructor forward at all
    misses = shared_cache().stats.misses
    again = run_ablation(genimage_root, out, seeds=(0,), recipe_name="test", train_subset="gen_a",
                         progress=False, recipe=RECIPE, model_config=SMALL)
    assert shared_cache().stats.misses == misses
    assert again["runs"]["hrr"][0]["auc_mean"] == hrr["auc_mean"]

    results = {"command": "gendet bench --ablation hrr (test)", "ablation": res, "timings": {"total_s": 1.0}}
    html, md = build_named_report("hrr", "tiny", results, tmp_path)
    text = html.read_text()
    for section in ("Task 1", "Task 2", "Size shift", "label noise", "claims", "kept"):
        assert section in text
    assert md.is_file()


def test_unknown_train_subset_is_refused(genimage_root, tmp_path) -> None:
    with pytest.raises(ValueError, match="train subset"):
        run_ablation(genimage_root, tmp_path, seeds=(0,), train_subset="nope", recipe=RECIPE, model_config=SMALL)


def test_tiny_preset_lists_hrr_and_dire_outside_the_default_run() -> None:
    specs = {s.name: s for s in presets.TINY.detectors}
    assert not specs["hrr"].in_default_run and not specs["dire"].in_default_run
    assert specs["hrr"].config["image_size"] == presets.TINY.image_size


def test_bench_matrix_with_hrr_and_dire(genimage_root, tmp_path, monkeypatch) -> None:
    # the tiny preset's own hrr/dire specs, CPU-test sized; the CLI path is the real one
    small = tuple(replace(s, config={**s.config, **SMALL, "steps": 1}, train={**s.train, "epochs": 1})
                  for s in presets.TINY.detectors if s.name in ("hrr", "dire"))
    monkeypatch.setitem(presets.PRESETS, "tiny", replace(presets.TINY, detector_specs=small,
                                                         degradations=("jpeg_30",)))
    out = tmp_path / "bench"
    rc = main(["bench", "--preset", "tiny", "--data", str(genimage_root), "--out", str(out), "--detectors",
               "hrr,dire", "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    labels = {s.label for s in small}
    assert set(res["matrix"]) == labels
    for label in labels:
        assert res["matrix"][label]["auc"]["rows"] == ["gen_a", "gen_b"]
        assert set(res["degradations"][label]["gen_a"]["table"]) == {"none", "jpeg_30"}
    assert (out / "runs" / "hrr" / "gen_a" / "model.safetensors").is_file()
