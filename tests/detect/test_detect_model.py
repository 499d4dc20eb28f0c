"""Which model a scan uses: the shipped default (or a clear error), preprocessing and threshold from config."""

from __future__ import annotations

from pathlib import Path

import pytest

import gendet
from gendet.data.preprocess import Preprocess
from gendet.detect import ModelSetupError, default_checkpoint_dir, load_scan_model
from gendet.detect import model as model_mod


def test_default_checkpoint_dir_is_inside_the_package() -> None:
    d = default_checkpoint_dir()
    assert d == Path(gendet.__file__).resolve().parent / "assets" / "default_model"


def test_missing_default_model_says_how_to_pass_a_checkpoint(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(model_mod, "default_checkpoint_dir", lambda: tmp_path / "default_model")
    with pytest.raises(ModelSetupError, match="--checkpoint"):
        load_scan_model(None)


def test_default_model_is_used_when_present(tiny_ckpt, monkeypatch) -> None:
    monkeypatch.setattr(model_mod, "default_checkpoint_dir", lambda: tiny_ckpt)
    m = load_scan_model(None)
    assert m.checkpoint == tiny_ckpt and m.name == "tiny_cnn"


def test_preprocess_and_threshold_come_from_the_config(tiny_ckpt) -> None:
    m = load_scan_model(tiny_ckpt)
    assert isinstance(m.preprocess, Preprocess) and m.preprocess.size == 32 and m.preprocess.align == "jpeg"
    assert (m.threshold, m.threshold_source) == (0.65, "val")
    assert not m.detector.training


@pytest.mark.parametrize(("mode", "expected"), [("fixed", (0.5, "fixed")), ("val", (0.65, "val")),
                                                ("0.3", (0.3, "user"))])
def test_threshold_override(tiny_ckpt, mode, expected) -> None:
    m = load_scan_model(tiny_ckpt, threshold=mode)
    assert (m.threshold, m.threshold_source) == expected


@pytest.mark.parametrize("bad", ["1.5", "nope"])
def test_bad_threshold_is_a_setup_error(tiny_ckpt, bad) -> None:
    with pytest.raises(ModelSetupError):
        load_scan_model(tiny_ckpt, threshold=bad)


def test_not_a_checkpoint(tmp_path) -> None:
    with pytest.raises(ModelSetupError, match="not a directory"):
        load_scan_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSetupError, match="cannot load"):
        load_scan_model(tmp_path / "empty")
