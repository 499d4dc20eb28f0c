"""The ablation registry and the statistics every study shares."""

from __future__ import annotations

import pytest

from gendet.bench.ablation import UniGenDetTinyStudy
from gendet.bench.ablations import ABLATIONS, get_ablation, study_class
from gendet.bench.study import AblationOptions, Study, compare, interval, welch_p


def test_every_registered_study_is_a_study_of_its_name_and_preset() -> None:
    for name, entry in ABLATIONS.items():
        assert set(entry.studies) == {"tiny", "genuine"}
        for preset in entry.studies:
            cls = study_class(name, preset)
            assert issubclass(cls, Study) and cls.name == name and cls.preset == preset
            assert cls.title and cls.protocol and cls.metrics and cls.default_recipe in cls.recipes


def test_unknown_study_is_named() -> None:
    with pytest.raises(KeyError, match="unknown ablation 'nope'"):
        get_ablation("nope")


def test_compare_respects_direction_and_reports_p() -> None:
    table = {"full": {"auc": interval([0.9, 0.91, 0.92]), "kid": interval([0.1, 0.11, 0.12])},
             "w/o x": {"auc": interval([0.6, 0.62, 0.61]), "kid": interval([0.2, 0.21, 0.19])}}
    up = compare(table, "full", "w/o x", "auc")
    assert up["holds"] is True and up["p_value"] < 0.01
    down = compare(table, "full", "w/o x", "kid", higher_is_better=False)
    assert down["holds"] is True
    assert compare(table, "w/o x", "full", "auc")["holds"] is False


def test_welch_needs_two_values_per_side() -> None:
    assert welch_p([1.0], [2.0, 3.0]) is None
    assert welch_p([1.0, None, 1.2], [2.0, 2.1]) is not None


def test_unigendet_runner_rejects_unknown_recipe(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown --recipe 'nope'"):
        UniGenDetTinyStudy.from_options(tmp_path, tmp_path / "out", AblationOptions(recipe="nope"))
