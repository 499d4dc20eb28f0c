"""The genuine benchmark on a small manifest tree: leave-one-group-out, recipes, Task 2, real sets, report."""

from __future__ import annotations

import json

import pytest

from gendet.bench.genuine import recipes, run_genuine_bench
from gendet.cli.main import main

SMALL = {"image_size": 32, "crops": 4, "taps": [1], "pretrained": False}


@pytest.fixture(scope="module")
def results(genuine_manifest, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return run_genuine_bench(genuine_manifest, cache, detector_config=SMALL, progress=False,
                             degradations=("jpeg_30", "blur_3"), recipe_names=["default", "no_augment", "resized"])


def test_every_group_is_held_out_once_and_edited_never_trained_on(results) -> None:
    assert results["groups"] == ["gen_a", "gen_b", "gen_c"]
    logo = results["recipes"]["default"]["logo"]
    assert set(logo) == {"gen_a", "gen_b", "gen_c"}
    for m in logo.values():
        assert m["n_fake"] == 8 and m["n_real"] == 10  # all of the held-out group vs the real val split
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["threshold"] <= 1.0
    assert results["recipes"]["default"]["edited"]["n_fake"] == 2
    counts = results["data"]["counts"]
    assert counts["groups"]["edited"] == {"train": 0, "val": 2}


def test_task2_real_sets_and_recipes(results) -> None:
    d = results["recipes"]["default"]
    assert set(d["task2"]) == {"none", "jpeg_30", "blur_3"}
    assert set(d["real_sets"]) == {"set_a", "set_b"}
    assert sum(v["n"] for v in d["real_sets"].values()) == 10
    assert set(results["recipes"]) == {"default", "no_augment", "resized"}
    assert set(results["train_on_one"]) == {"gen_a", "gen_b", "gen_c"}
    assert results["errors"] == []


def test_rerun_reads_every_feature_from_the_cache(genuine_manifest, tmp_path) -> None:
    kw = dict(detector_config=SMALL, progress=False, degradations=("jpeg_30",), recipe_names=["no_augment"])
    first = run_genuine_bench(genuine_manifest, tmp_path, **kw)
    second = run_genuine_bench(genuine_manifest, tmp_path, **kw)
    assert first["timings"]["computed"] > 0 and second["timings"]["computed"] == 0
    assert first["recipes"] == second["recipes"]


def test_recipes_are_defined_for_any_number_of_draws() -> None:
    assert recipes(3)["default"].train_views == ("grid", "full_0", "full_1", "full_2")


def test_cli_writes_results_and_report(genuine_manifest, tmp_path, capsys) -> None:
    out = tmp_path / "bench"
    code = main(["bench", "--preset", "genuine", "--data", str(genuine_manifest), "--out", str(out),
                 "--cache-dir", str(tmp_path / "c"), "--no-progress", "--recipes", "default,single_crop",
                 "--compare", "fast", *sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["recipes"]) == {"default", "single_crop"}
    assert "fast" in res["compare"] and res["compare"]["fast"]["mean_auc"] is not None
    html = (out / "report.html").read_text()
    assert "leave one generator group out" in html.lower() and "data:image/png;base64" in html
    assert "leave-one-group-out AUC" in capsys.readouterr().out


def test_cli_needs_a_manifest(tmp_path) -> None:
    assert main(["bench", "--preset", "genuine", "--out", str(tmp_path / "x")]) == 2


def test_any_registered_detector_runs_through_the_trainer(genuine_manifest, tmp_path) -> None:
    res = run_genuine_bench(genuine_manifest, tmp_path, detector_name="tiny_cnn", detector_config={"image_size": 32},
                            progress=False, degradations=("jpeg_30",), train_cfg={"epochs": 1, "batch_size": 16})
    d = res["recipes"]["default"]
    assert set(d["logo"]) == {"gen_a", "gen_b", "gen_c"} and d["logo_mean_auc"] is not None
    assert set(d["task2"]) == {"none", "jpeg_30"}
    assert res["train_on_one"] == {}


@pytest.mark.parametrize("name", ["unigendet_lite", "gamma_lite", "hrr_lite"])
def test_the_seed_systems_run_in_the_genuine_bench_from_the_cli(name, genuine_manifest, tmp_path) -> None:
    from gendet.models import get_detector_class

    small = {**get_detector_class(name).small_config, "crops": 4}
    out = tmp_path / "bench"
    code = main(["bench", "--preset", "genuine", "--data", str(genuine_manifest), "--out", str(out), "--detectors",
                 name, "--cache-dir", str(tmp_path / "c"), "--no-progress", "--recipes", "default",
                 "--degradations", "none", "--compare", "", *sum((["--set", f"{k}={json.dumps(v)}"]
                                                                  for k, v in small.items()), [])])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    d = res["recipes"]["default"]
    assert set(d["logo"]) == {"gen_a", "gen_b", "gen_c"} and d["logo_mean_auc"] is not None
    assert set(d["task2"]) == {"none"} and res["detector"]["name"] == name
    if name != "gamma_lite":  # their frozen autoencoder is trained on the real training photos first
        assert res["detector"]["autoencoder"]["n_photos"] > 0


def test_unknown_degradation_is_a_usage_error(genuine_manifest, tmp_path) -> None:
    assert main(["bench", "--preset", "genuine", "--data", str(genuine_manifest), "--out", str(tmp_path / "x"),
                 "--degradations", "jpeg_31"]) == 2
