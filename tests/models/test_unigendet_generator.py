"""A trained UniGenDet as a generator family of the local benchmark."""

from __future__ import annotations

import pytest
import torch
from generation.standins import SIZE, SmoothNoise

from gendet.bench.tiny_genimage import build_tiny_genimage
from gendet.cli.main import main
from gendet.detect.model import default_checkpoint_dir
from gendet.evaluation.fidelity import TinyCNNExtractor
from gendet.models import create_detector
from gendet.models.checkpoint import save_checkpoint
from gendet.models.unigendet import UniGenDet
from gendet.models.unigendet.generator import UnifiedGenerator


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_detector("unigendet", **{**UniGenDet.small_config, "image_size": SIZE})
    torch.nn.init.normal_(model.flow_out.weight, std=0.05)  # non-trivial velocity, so samples vary
    save_checkpoint(tmp_path / "ckpt", model, {"threshold": 0.5, "threshold_source": "fixed"})
    return tmp_path / "ckpt", model


def test_from_checkpoint_generates_what_the_model_generates(checkpoint) -> None:
    path, model = checkpoint
    gen = UnifiedGenerator.from_checkpoint(path)
    assert gen.name == "unigendet" and gen.family == "unified" and gen.image_size == SIZE
    got = gen.generate(3, seed=5)
    want = model.generate(3, seed=5, steps=int(gen.config["sample_steps"]), cfg_scale=float(gen.config["cfg_scale"]))
    assert got.shape == (3, 3, SIZE, SIZE) and (got.int() - want.int()).abs().max() <= 1


def test_it_becomes_a_subset_of_the_local_genimage(checkpoint, tmp_path) -> None:
    gen = UnifiedGenerator.from_checkpoint(checkpoint[0])
    info = build_tiny_genimage(tmp_path / "data", [SmoothNoise(), gen], size=SIZE,
                               n_per_split={"train": 8, "val": 8}, extractor=TinyCNNExtractor(dim=8),
                               cache_dir=tmp_path / "cache", progress=False)
    assert len(info["subsets"]) == 2 and "unigendet" in info["subsets"]
    assert info["subsets"]["unigendet"]["family"] == "unified"
    assert len(list((tmp_path / "data" / "unigendet" / "val" / "ai").iterdir())) == 8


def test_bench_rejects_a_checkpoint_that_cannot_generate(tmp_path, capsys) -> None:
    code = main(["bench", "--preset", "tiny", "--out", str(tmp_path / "b"),
                 "--unigendet", str(default_checkpoint_dir()), "--no-progress"])
    assert code == 2 and "cannot generate" in capsys.readouterr().err
