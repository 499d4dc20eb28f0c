"""`gendet generators list|train` with a tiny preset and stand-in crops (no real photos needed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import gendet.data.real_photos as real_photos
from gendet.cli import generators_cmd
from gendet.cli.main import UsageError
from gendet.generation import load_generator
from gendet.generation.presets import PRESETS

from .helpers import TINY, single_thread, tiny_images

SIZE = 64  # the command always trains on 64 px crops


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


@pytest.fixture
def tiny_preset(monkeypatch: pytest.MonkeyPatch) -> dict:
    preset = {
        name: {"steps": 2, "batch_size": 4, "config": {**TINY[name], "image_size": SIZE}}
        for name in ("dcgan", "latent_flow")
    }
    preset["ae_recon"] = {"steps": 0, "batch_size": 4, "config": {**TINY["ae_recon"], "image_size": SIZE},
                          "adopt_autoencoder_from": "latent_flow"}
    monkeypatch.setitem(PRESETS, "unit", preset)
    calls = []

    def fake_crops(split: str, size: int = 64, real_dir: str | None = None, **_: object) -> torch.Tensor:
        calls.append((split, size, real_dir))
        return tiny_images(10, size=size)

    monkeypatch.setattr(real_photos, "load_real_crops", fake_crops)
    return {"preset": preset, "calls": calls}


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gendet")
    generators_cmd.add_parser(parser.add_subparsers(dest="command"), "generators")
    return generators_cmd.run(parser.parse_args(["generators", *argv]))


def test_list(capsys: pytest.CaptureFixture) -> None:
    assert _run(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"dcgan", "vae", "pixel_flow", "latent_flow", "ae_recon", "unigendet"}
    assert all(r["parameters"] > 0 for r in rows)


def test_train_writes_weights_metadata_and_grids(tiny_preset: dict, tmp_path: Path) -> None:
    out = tmp_path / "gens"
    assert _run(["train", "--preset", "unit", "--out", str(out), "--seed", "5", "--quiet",
                 "--real-dir", "photos", "--threads", "1"]) == 0
    assert tiny_preset["calls"] == [("train", SIZE, "photos")]  # train split only
    for name in ("dcgan", "latent_flow", "ae_recon"):
        meta = json.loads((out / f"{name}.json").read_text())
        assert meta["command"].startswith("gendet generators train --preset unit --seed 5")
        assert meta["storage_dtype"] == "float16" and meta["n_train_crops"] == 10
        assert (out / meta["sample_grid"]).stat().st_size > 0
        gen = load_generator(out / name)
        src = tiny_images(2, size=SIZE) if gen.needs_source else None
        assert gen.generate(2, seed=0, source=src).shape == (2, 3, SIZE, SIZE)
    assert json.loads((out / "dcgan.json").read_text())["seed"] == 5
    assert json.loads((out / "ae_recon.json").read_text())["training_summary"]["adopted_autoencoder_from"] == \
        "latent_flow"


def test_adopter_needs_its_donor(tiny_preset: dict, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="train latent_flow first"):
        _run(["train", "--preset", "unit", "--out", str(tmp_path), "--only", "ae_recon", "--quiet"])
    with pytest.raises(UsageError, match="not in preset"):
        _run(["train", "--preset", "unit", "--out", str(tmp_path), "--only", "vae", "--quiet"])
