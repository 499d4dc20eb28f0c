"""What the tiny-preset studies share: samples and the training subset, reuse of a run by its key, the Task 1 row."""

from __future__ import annotations

import json

import pytest

from gendet.bench.tiny_study import TinyStudy, cross_generator_row, finished
from gendet.models import create_detector
from gendet.models.checkpoint import save_checkpoint


def test_a_run_is_reused_only_with_its_key_and_its_weights(tmp_path) -> None:
    run = tmp_path / "run"
    key = {"lr": 1e-3, "seed": 0}
    assert not finished(run, key)
    save_checkpoint(run, create_detector("tiny_cnn"), {"ablation_key": key})
    assert finished(run, key) and not finished(run, {**key, "seed": 1})
    assert finished(run, {"lr": 1e-3}, lambda stored: {"lr": stored["lr"]})  # normalised before comparing
    (run / "model.safetensors").unlink()
    assert not finished(run, key)


def test_cross_generator_row_leaves_the_training_subset_out_of_unseen() -> None:
    per = {"a": {"acc": 1.0, "auc": 1.0}, "b": {"acc": 0.5, "auc": 0.6}, "manipulated": {"acc": 0.0, "auc": 0.2}}
    row = cross_generator_row(per, "a", apart=("manipulated",))
    assert row["auc_mean"] == pytest.approx(0.6) and row["auc_unseen"] == 0.6 and row["acc_unseen"] == 0.5
    assert set(row["per_subset"]) == {"a", "b", "manipulated"}
    assert cross_generator_row({"a": {"acc": 1.0, "auc": 1.0}}, "a")["auc_unseen"] is None


class _Study(TinyStudy):
    name, recipes, default_recipe = "t", {"r": {}}, "r"


def test_samples_are_capped_per_class_and_the_training_subset_must_exist(genimage_root, tmp_path) -> None:
    capped = _Study(genimage_root, tmp_path, train_subset="gen_a").load_samples(max_per_class=2)
    counts: dict[tuple, int] = {}
    for s in capped:
        counts[(s.generator, s.split, s.label)] = counts.get((s.generator, s.split, s.label), 0) + 1
    assert set(counts.values()) == {2}
    with pytest.raises(ValueError, match="train subset 'nope' not in the data"):
        _Study(genimage_root, tmp_path, train_subset="nope").load_samples()


def test_real_crops_of_one_photo_share_a_holdout_group(tmp_path) -> None:
    from data.manipulations.helpers import make_base_root

    root = make_base_root(tmp_path / "base")
    samples = _Study(root, tmp_path / "out").load_samples()
    real = [s for s in samples if s.label == 0 and s.split == "train"]
    assert {s.group for s in real} == set(json.loads((root / "manifest.json").read_text())["real"]["crop_sources"]
                                          ["train"])
