"""The study framework on a toy study: one runner's result block, baseline rows, claims, the one report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gendet.bench.study import AblationOptions, Study, compare, run_study, slug
from gendet.report.study import build_study_report


class ToyStudy(Study):
    name, preset, title = "toy", "tiny", "Toy ablation"
    protocol = "Two variants whose AUC is a function of the seed."
    metrics = ("auc", "kid")
    recipes, default_recipe = {"quick": {"steps": 1}}, "quick"

    @classmethod
    def from_options(cls, data: Path, out: Path, options: AblationOptions) -> ToyStudy:
        return cls(out, options.recipe, progress=options.progress)

    def prepare(self) -> None:
        self.prepared = True

    def variant_names(self) -> list[str]:
        return ["full", "w/o x"]

    def run_seed(self, seed: int, first: bool) -> dict[str, dict[str, Any]]:
        return {"full": {"auc": 0.9 + seed / 100, "kid": 0.1}, "w/o x": {"auc": 0.6 + seed / 100, "kid": None},
                "baseline": {"auc": 0.5, "first": first}}

    def claims(self, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return {"x helps (AUC)": compare(table, "full", "w/o x", "auc")}

    def summary(self) -> dict[str, Any]:
        return {"variants": {"full": {"x": True}, "w/o x": {"x": False}}}

    @classmethod
    def report_sections(cls, rb: Any, ab: dict[str, Any], out_dir: Path) -> None:
        rb.add_heading("Toy section")


def test_the_runner_builds_one_block_for_every_study(tmp_path) -> None:
    study = ToyStudy.from_options(tmp_path, tmp_path, AblationOptions(seeds=(0, 1, 2)))
    ab = run_study(study, (0, 1, 2))
    assert study.prepared and ab["study"] == "toy" and ab["preset"] == "tiny" and ab["seeds"] == [0, 1, 2]
    assert list(ab["runs"]) == ["full", "w/o x", "baseline"]  # the baseline row after the variants
    assert [r["seed"] for r in ab["runs"]["full"]] == [0, 1, 2]
    assert [r["first"] for r in ab["runs"]["baseline"]] == [True, False, False]
    full = ab["table"]["full"]["auc"]
    assert full["n"] == 3 and full["mean"] == pytest.approx(0.91) and full["ci95"] > 0
    assert ab["table"]["w/o x"]["kid"]["n"] == 0  # None values are left out
    claim = ab["claims"]["x helps (AUC)"]
    assert claim["holds"] is True and claim["p_value"] < 0.01
    assert ab["recipe"] == {"name": "quick", "steps": 1} and "total_s" in ab["timings"]
    assert ab["protocol"] == ToyStudy.protocol and ab["variants"]["full"] == {"x": True}


def test_an_unknown_recipe_names_the_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown --recipe 'slow' for the toy ablation; available: quick"):
        ToyStudy.from_options(tmp_path, tmp_path, AblationOptions(recipe="slow"))


def test_the_one_report_renders_shared_and_own_sections(tmp_path) -> None:
    ab = run_study(ToyStudy(tmp_path), (0,))
    html, md = build_study_report({"ablation": ab, "command": "gendet bench --ablation toy"}, tmp_path,
                                  ToyStudy.title, ToyStudy.report_sections)
    text = md.read_text()
    for part in ("Toy ablation", "x=on", "x helps (AUC)", "One seed", "Toy section", "Two variants"):
        assert part in text, part
    assert html.is_file() and "<img" in html.read_text()


def test_slug_makes_file_names() -> None:
    assert slug("w/o SMSA") == "w_o_smsa" and slug("hrr (squared loss), 20% label noise") == \
        "hrr__squared_loss___20__label_noise"
